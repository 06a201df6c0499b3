// Requests whose outcome is audited (sign-in steps, enrollment, self-service and admin changes,
// logout) are refused with 503 while the audit queue is full, before they change anything: a
// change must not happen unrecorded, and a stalled database must not grow the queue without
// bound (issue 7 §8). Reads and token requests go on.
import type { Context, Next } from 'koa';
import { GatehouseError } from '../errors.ts';

const AUDITED = /^\/(?:interaction|enroll|account|admin|session)(?:\/|$)/;
const RETRY_AFTER_SECONDS = 5;

export function auditCapacity(queue: { readonly full: boolean }) {
  return async function refuseWhenAuditFull(ctx: Context, next: Next) {
    if (queue.full && ctx.method === 'POST' && AUDITED.test(ctx.path)) {
      ctx.set('retry-after', String(RETRY_AFTER_SECONDS));
      throw new GatehouseError('UNAVAILABLE', 'Gatehouse is busy recording events; try again in a few seconds.');
    }
    await next();
  };
}

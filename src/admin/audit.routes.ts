// The audit log for owners and auditors: filters, newest first, keyset pages, and whether the
// chain verifies. Each view checks the newest signed checkpoint and the events after it (the
// cost of a view stays flat as the log grows); `gatehouse audit verify` walks the whole chain.
import type Router from '@koa/router';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES } from '../audit/actions.ts';
import { listAudit, type AuditPage } from '../audit/query.ts';
import { isIngestAction } from '../audit/ingest.ts';
import { verifyAuditSinceCheckpoint } from '../audit/verify.ts';
import { isGatehouseError } from '../errors.ts';
import { auditPage, type AuditFilter } from '../../views/admin/audit.ts';
import type { Guard } from './guard.ts';
import { one } from './input.ts';
import type { Db } from '../db/handle.ts';

export const AUDIT_PAGE_SIZE = 50;

export function parseAuditFilter(query: Record<string, unknown>): AuditFilter & { before: number | null } {
  const action = one(query.action, 64);
  const outcome = one(query.outcome, 16);
  const before = Number(one(query.before, 20));
  return {
    action: (AUDIT_ACTIONS as readonly string[]).includes(action) || isIngestAction(action) ? action : '',
    actor: one(query.actor, 80).trim(),
    source: one(query.source, 80).trim(),
    outcome: (AUDIT_OUTCOMES as readonly string[]).includes(outcome) ? outcome : '',
    before: Number.isSafeInteger(before) && before > 0 ? before : null,
  };
}

function href(f: AuditFilter, before: number | null): string {
  const q = new URLSearchParams();
  if (f.action) q.set('action', f.action);
  if (f.actor) q.set('actor', f.actor);
  if (f.outcome) q.set('outcome', f.outcome);
  if (f.source) q.set('source', f.source);
  if (before !== null) q.set('before', String(before));
  const s = q.toString();
  return s ? `/admin/audit?${s}` : '/admin/audit';
}

export function auditRoutes(router: Router, deps: { db: Db; guard: Guard }): void {
  const { db, guard } = deps;
  router.get('/admin/audit', async (ctx) => {
    const r = await guard.page(ctx, 'audit');
    if (!r) return;
    const f = parseAuditFilter(ctx.query);
    let page: AuditPage = { events: [], nextBeforeSeq: null };
    let error: string | null = null;
    try {
      page = await listAudit(db, {
        ...(f.action ? { action: f.action } : {}),
        ...(f.actor ? { actor: f.actor } : {}),
        ...(f.outcome ? { outcome: f.outcome as (typeof AUDIT_OUTCOMES)[number] } : {}),
        ...(f.source ? { source: f.source } : {}),
        ...(f.before !== null ? { beforeSeq: f.before } : {}),
        limit: AUDIT_PAGE_SIZE,
      });
    } catch (err) {
      if (!isGatehouseError(err)) throw err;
      error = err.message;
    }
    const verify = await verifyAuditSinceCheckpoint(db);
    guard.html(
      ctx,
      auditPage(r.frame, {
        events: page.events,
        filter: f,
        verify,
        olderHref: page.nextBeforeSeq !== null ? href(f, page.nextBeforeSeq) : null,
        newestHref: f.before !== null ? href(f, null) : null,
        error,
      }),
    );
  });
}

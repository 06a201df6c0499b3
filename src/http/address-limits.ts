// The HTTP edge of the per-address limit (./rate-limits.ts): an address over its budget of
// unauthenticated failures gets 429 at every limited endpoint before any work is done; a dead
// invitation link (410) counts as a failure. oidc-provider's own failures are counted from its
// events (src/oidc/rate-limit-hooks.ts).
import type { IncomingMessage } from 'node:http';
import type { Context, Next } from 'koa';
import { errorView } from '../../views/error.ts';
import { limitedEndpoint, tooManyRequestsBody, type RateLimits } from './rate-limits.ts';

export function addressLimits(limits: RateLimits) {
  return async function limitAddresses(ctx: Context, next: Next) {
    const endpoint = limitedEndpoint(ctx.path);
    if (!endpoint) return next();
    const wait = limits.addressWait(ctx.ip);
    if (wait) {
      ctx.status = 429;
      ctx.set('retry-after', String(wait));
      ctx.set('cache-control', 'no-store');
      if (ctx.accepts('html', 'json') === 'html' && (ctx.method === 'GET' || endpoint === 'device')) {
        ctx.type = 'html';
        ctx.body = errorView({
          title: 'Too many requests',
          message: `Too many failed requests from your network. Try again in ${wait} seconds.`,
          requestId: ctx.state.requestId,
        });
      } else {
        ctx.body = tooManyRequestsBody(wait);
      }
      return;
    }
    await next();
    if (endpoint === 'enroll' && ctx.status === 410) await limits.addressFailed(ctx.ip, endpoint, ctx.state.requestId);
  };
}

/**
 * The caller's address as Koa and oidc-provider see it (maxIpsCount 1): behind a trusted proxy,
 * the last X-Forwarded-For entry, the one the proxy itself appended.
 */
export function requestIp(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy ? req.headers['x-forwarded-for'] : undefined;
  if (typeof forwarded === 'string' && forwarded) return forwarded.split(',').pop()!.trim();
  return req.socket.remoteAddress ?? '';
}

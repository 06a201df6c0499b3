// Who may read /metrics. Its counters describe traffic, failures and keys: an operator's view,
// not a public one (OWASP ASVS V14.3, "no unnecessary information disclosure").
//  - With GATEHOUSE_METRICS_TOKEN: `Authorization: Bearer <token>`, compared in constant time.
//  - Without it: only a client on this host's loopback, by the socket's own address (never
//    X-Forwarded-For), and not through a proxy: a reverse proxy on the same host connects from
//    loopback too, so a forwarded request is refused.
import crypto from 'node:crypto';
import type { Context } from 'koa';

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

function sameSecret(given: string, expected: string): boolean {
  // Hash both sides: equal lengths for timingSafeEqual, and no early exit on a length mismatch.
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export type MetricsAccess = 'allowed' | 'unauthenticated' | 'forbidden';

export function metricsAccess(ctx: Pick<Context, 'get' | 'req'>, token: string | null): MetricsAccess {
  if (token) {
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(ctx.get('authorization'));
    return m && sameSecret(m[1]!, token) ? 'allowed' : 'unauthenticated';
  }
  const forwarded = ctx.get('x-forwarded-for') || ctx.get('forwarded') || ctx.get('x-real-ip');
  return isLoopback(ctx.req.socket.remoteAddress) && !forwarded ? 'allowed' : 'forbidden';
}

import type Router from '@koa/router';
import { ping, type Connection } from '../db/connect.ts';
import { metricsAccess } from './metrics-access.ts';
import type { Metrics } from './metrics.ts';

const READY_PING_TIMEOUT_MS = 2000;

export function healthRoutes(
  router: Router,
  deps: { db: Connection; ready: () => boolean; draining: () => boolean; metrics: Metrics; metricsToken: string | null },
): void {
  // Liveness: the process answers. Nothing else, so a database outage does not get it restarted.
  router.get('/healthz', (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  // Readiness: this instance can issue tokens (database reachable, signing keys loaded) and is
  // not shutting down. While it drains (src/http/drain.ts) it answers 503 so that load balancers
  // stop sending it new traffic, and still serves what they send meanwhile.
  router.get('/readyz', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    if (deps.draining()) {
      ctx.status = 503;
      ctx.body = { status: 'draining' };
      return;
    }
    const checks = { database: false, keys: false };
    try {
      // Bounded: a database that does not answer makes the instance unready within seconds.
      await ping(deps.db.kysely, READY_PING_TIMEOUT_MS);
      checks.database = true;
    } catch {
      /* reported below */
    }
    checks.keys = deps.ready();
    const ok = checks.database && checks.keys;
    ctx.status = ok ? 200 : 503;
    ctx.body = { status: ok ? 'ready' : 'not ready', checks };
  });
  router.get('/metrics', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const access = metricsAccess(ctx, deps.metricsToken);
    if (access !== 'allowed') {
      ctx.status = access === 'unauthenticated' ? 401 : 403;
      if (access === 'unauthenticated') ctx.set('www-authenticate', 'Bearer realm="gatehouse-metrics"');
      ctx.body = { error: access === 'unauthenticated' ? 'unauthorized' : 'forbidden' };
      return;
    }
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
}

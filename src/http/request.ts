// Every request: an id (echoed in X-Request-Id and in log lines and audit events), metrics, one
// structured log line, errors turned into a page or JSON that never shows a stack, and the body
// size limit.
import crypto from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Context, Next } from 'koa';
import { fromHttpClientError, isGatehouseError, OAUTH_ERROR, publicMessage } from '../errors.ts';
import { asUnavailable, RETRY_AFTER_SECONDS } from '../db/unavailable.ts';
import type { Logger } from '../log.ts';
import { errorView, unavailableView } from '../../views/error.ts';
import { routeGroup, type Metrics } from './metrics.ts';

/** The path as logged: an invitation link's token is a credential and never reaches the log. */
export function loggablePath(path: string): string {
  return path.replace(/^\/enroll\/[^/]+/, '/enroll/:token').slice(0, 200);
}

export function observe(
  deps: { log: Logger; metrics: Metrics },
  r: { requestId: string; method: string; path: string; status: number; started: bigint; ip: string },
): void {
  const route = routeGroup(r.path);
  const seconds = Number(process.hrtime.bigint() - r.started) / 1e9;
  deps.metrics.httpRequests.inc({ route, status: `${Math.floor(r.status / 100)}xx` });
  deps.metrics.httpDuration.observe({ route }, seconds);
  // Successful token requests are the bulk of traffic: counted, not logged one by one. The path
  // only: query strings may carry state, hints or codes.
  if (route !== 'token' || r.status >= 400) {
    deps.log.info(
      { requestId: r.requestId, method: r.method, path: loggablePath(r.path), status: r.status, ms: Math.round(seconds * 1000), ip: r.ip },
      'request',
    );
  }
}

export function requestMiddleware(deps: { log: Logger; metrics: Metrics }) {
  return async function request(ctx: Context, next: Next) {
    const started = process.hrtime.bigint();
    const requestId = crypto.randomUUID();
    ctx.state.requestId = requestId;
    ctx.res.setHeader('X-Request-Id', requestId);
    try {
      await next();
    } catch (thrown) {
      const err = asUnavailable(fromHttpClientError(thrown));
      const known = isGatehouseError(err);
      if (!known) deps.log.error({ err, requestId }, 'unhandled error');
      else if (err !== thrown) deps.log.warn({ err: (thrown as Error).message, requestId }, 'database unavailable');
      ctx.status = known ? err.status : 500;
      ctx.set('cache-control', 'no-store');
      if (ctx.status === 503) ctx.set('retry-after', String(RETRY_AFTER_SECONDS));
      const message = publicMessage(err);
      if (ctx.accepts('html', 'json') === 'html' && !ctx.is('json')) {
        ctx.type = 'html';
        ctx.body =
          ctx.status === 503
            ? unavailableView({ message, requestId })
            : errorView({
                title: known ? 'Request refused' : 'Something went wrong',
                message: known ? message : 'An internal error occurred.',
                requestId,
              });
      } else {
        ctx.body = { error: known ? OAUTH_ERROR[err.code] : 'server_error', error_description: message };
      }
    } finally {
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      observe(deps, { requestId, method: ctx.method, path: ctx.path, status, started, ip: ctx.ip });
    }
  };
}

/** 413 before anything reads the body (oidc-provider's own limit is 56 KiB). */
export function refuseLargeBody(contentLength: string | undefined, maxBytes: number, res: ServerResponse): boolean {
  if (Number(contentLength || 0) <= maxBytes) return false;
  res.writeHead(413, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ error: 'invalid_request', error_description: `request body larger than ${maxBytes} bytes` }));
  return true;
}

/** `larger`: paths with a limit of their own (POST /audit/events takes a batch of events). */
export function bodyLimit(maxBytes: number, larger: Record<string, number> = {}) {
  return async function limit(ctx: Context, next: Next) {
    const max = Object.hasOwn(larger, ctx.path) ? Math.max(maxBytes, larger[ctx.path]!) : maxBytes;
    if (refuseLargeBody(ctx.get('content-length'), max, ctx.res)) {
      ctx.respond = false;
      return;
    }
    await next();
  };
}

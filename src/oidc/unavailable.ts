// oidc-provider turns any error its storage throws into 500 `server_error` ("oops! something went
// wrong"). When the cause is a database outage (src/db/unavailable.ts), its answer is replaced by
// 503 with Retry-After and `temporarily_unavailable` (RFC 6749 sections 4.1.2.1 and 5.2 use the
// code for exactly this), as JSON for clients and as a "try again shortly" page where the library
// rendered a page for a person. Endpoints that need no database (client credentials for a client
// already in the cache) never get here and keep working.
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { databaseUnavailable, isDatabaseUnavailable, RETRY_AFTER_SECONDS } from '../db/unavailable.ts';
import { unavailableView } from '../../views/error.ts';

type Ctx = KoaContextWithOIDC;

function answer(ctx: Ctx): void {
  const err = databaseUnavailable();
  ctx.status = err.status;
  ctx.set('retry-after', String(RETRY_AFTER_SECONDS));
  ctx.set('cache-control', 'no-store');
  // A page where the library rendered one (its /auth errors always are), or for a browser.
  const page = ctx.response.is('html') || (ctx.body == null && ctx.accepts('json', 'html') === 'html');
  if (page) {
    ctx.type = 'html';
    ctx.body = unavailableView({ message: err.message, requestId: String(ctx.res.getHeader('x-request-id') ?? '') });
  } else {
    ctx.type = 'json';
    ctx.body = { error: 'temporarily_unavailable', error_description: err.message };
  }
}

/** Install on a provider before its callback() is taken. */
export function answerDatabaseOutages(provider: Provider): void {
  const outage = new WeakSet<object>();
  // The library's error handlers report the original error here, synchronously, before answering.
  provider.on('server_error', (ctx: Ctx, err: unknown) => {
    if (isDatabaseUnavailable(err)) outage.add(ctx);
  });
  provider.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      // An error that escaped the library's own handlers.
      if (!isDatabaseUnavailable(err)) throw err;
      outage.add(ctx);
    }
    if (outage.has(ctx)) answer(ctx as Ctx);
  });
}

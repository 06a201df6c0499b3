// OIDC Core §3.1.2.1 requires the authorization endpoint to accept POST, and RP-Initiated Logout
// §2 the end-session endpoint. oidc-provider registers those POST routes only with
// enableHttpPostMethods, which needs SameSite=None cookies: a cross-site form POST would
// otherwise arrive without the session cookie. Gatehouse keeps SameSite=Lax and answers the form
// POST with a 303 to the equivalent GET: a top-level GET navigation carries Lax cookies.
import type Router from '@koa/router';
import type { Context } from 'koa';

const FORM = 'application/x-www-form-urlencoded';

function toGet(ctx: Context, path: string) {
  if (!ctx.is(FORM)) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_request', error_description: `POST to ${path} must be ${FORM}` };
    return;
  }
  const body = (ctx.request.body ?? {}) as Record<string, unknown>;
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(body)) {
    // A repeated parameter is kept repeated, so oidc-provider refuses it as it would on a GET.
    for (const v of Array.isArray(value) ? value : [value]) if (typeof v === 'string') query.append(name, v);
  }
  ctx.set('cache-control', 'no-store');
  ctx.status = 303;
  ctx.redirect(`${path}?${query}`);
  ctx.status = 303;
}

export function postRequestRoutes(router: Router): void {
  router.post('/auth', (ctx) => toGet(ctx, '/auth'));
  router.post('/session/end', (ctx) => toGet(ctx, '/session/end'));
}

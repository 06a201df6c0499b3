// The UserInfo endpoint (OIDC Core §5.3) for Gatehouse's own access tokens. oidc-provider's /me
// accepts only tokens it stores and only for its own audience; Gatehouse's access tokens are JWTs
// for the agentserver. Rather than widen that audience, Gatehouse answers /me itself for tokens
// issued to a person with the openid scope, checked online (./access-token.ts).
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { AccessTokenCheck } from './access-token.ts';

const FORM = 'application/x-www-form-urlencoded';

// RFC 6750 §2: the Authorization header, or (POST, form-encoded) the access_token body parameter;
// never both, never the query string (§2.3 is discouraged and Gatehouse does not offer it).
function bearerFrom(ctx: Context): { token?: string; error?: string } {
  const header = ctx.get('authorization');
  const fromHeader = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header)?.[1];
  const body = ctx.method === 'POST' && ctx.is(FORM) ? (ctx.request.body as Record<string, unknown> | undefined) : undefined;
  const fromBody = typeof body?.access_token === 'string' ? body.access_token : undefined;
  if (header && !fromHeader) return { error: 'invalid_request' };
  if (fromHeader && fromBody) return { error: 'invalid_request' };
  return { token: fromHeader ?? fromBody };
}

function refuse(ctx: Context, status: number, error?: string, description?: string) {
  ctx.status = status;
  // RFC 6750 §3: without any token, the challenge names no error.
  ctx.set('www-authenticate', error ? `Bearer error="${error}"${description ? `, error_description="${description}"` : ''}` : 'Bearer');
  ctx.body = error ? { error, ...(description ? { error_description: description } : {}) } : { error: 'invalid_token' };
}

export function userinfoRoutes(router: Router, deps: { check: AccessTokenCheck }): void {
  const handle = async (ctx: Context) => {
    ctx.set('cache-control', 'no-store');
    ctx.set('access-control-allow-origin', '*');
    const { token, error } = bearerFrom(ctx);
    if (error) return refuse(ctx, 400, error, 'one bearer token, in the Authorization header or the form body');
    if (!token) return refuse(ctx, 401);
    const live = await deps.check(token);
    if (!live?.account) return refuse(ctx, 401, 'invalid_token', 'invalid or expired access token');
    // A sender-constrained token (cnf, src/oidc/dpop.ts) is worth nothing without its proof, and
    // /me does not check proofs: refused rather than accepted as a bearer token (RFC 9449 §7.2).
    if ((live.claims as { cnf?: unknown }).cnf !== undefined)
      return refuse(ctx, 401, 'invalid_token', 'a sender-constrained token is not accepted here as a bearer token');
    const scopes = new Set((live.claims.scope ?? '').split(' '));
    if (!scopes.has('openid')) return refuse(ctx, 403, 'insufficient_scope', 'the token was not granted the openid scope');
    // Standard claims for the granted scopes only (OIDC Core §5.4), read now rather than from the token.
    ctx.body = {
      sub: live.account.id,
      ...(scopes.has('email') ? { email: live.account.email, email_verified: true } : {}),
    };
  };
  router.get('/me', handle);
  router.post('/me', handle);
}

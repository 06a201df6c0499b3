// Token introspection (RFC 7662) with Gatehouse's access policy and its JWT access tokens.
//  - Who sees `active: true`: the client the token was issued to, or a client registered as a
//    resource server (`clients create --introspect`). Anyone else learns only `active: false`
//    (RFC 7662 §4: the endpoint must not tell a client about tokens that are not its business).
//  - oidc-provider refuses to introspect JWTs (unsupported_token_type) after it has authenticated
//    the caller. This middleware takes over from that point: the same authenticated client, an
//    online check of the JWT (./access-token.ts), the same response shape.
import type Provider from 'oidc-provider';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import type { ClientCache } from '../clients/client-cache.ts';
import type { AccessTokenCheck } from './access-token.ts';

async function mayIntrospect(clients: ClientCache, callerId: string, tokenClientId: string | undefined): Promise<boolean> {
  if (tokenClientId !== undefined && callerId === tokenClientId) return true;
  return (await clients.get(callerId))?.introspect === true;
}

export function introspectionFeature(clients: ClientCache) {
  return {
    enabled: true as const,
    allowedPolicy: (_ctx: KoaContextWithOIDC, client: Client, token: unknown) =>
      mayIntrospect(clients, client.clientId, (token as { clientId?: string }).clientId),
  };
}

export function introspectJwtAccessTokens(provider: Provider, deps: { clients: ClientCache; check: AccessTokenCheck }): void {
  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    if (oidc?.route !== 'introspection' || ctx.status !== 400) return;
    if ((ctx.body as { error?: string } | undefined)?.error !== 'unsupported_token_type' || !oidc.client) return;
    const token = oidc.params?.token;
    ctx.status = 200;
    ctx.set('cache-control', 'no-store');
    const live = await deps.check(token);
    if (!live || !(await mayIntrospect(deps.clients, oidc.client.clientId, live.claims.client_id))) {
      ctx.body = { active: false };
      return;
    }
    const c = live.claims;
    // RFC 9449 §6.2 / RFC 8705 §3.2: a sender-constrained token says so, with its confirmation.
    const cnf = (c as { cnf?: Record<string, unknown> }).cnf;
    ctx.body = {
      active: true,
      iss: c.iss,
      sub: c.sub,
      aud: c.aud,
      client_id: c.client_id,
      scope: c.scope || undefined,
      exp: c.exp,
      iat: c.iat,
      jti: c.jti,
      sid: typeof c.sid === 'string' ? c.sid : undefined,
      token_type: typeof cnf?.jkt === 'string' ? 'DPoP' : 'Bearer',
      ...(cnf && typeof cnf === 'object' ? { cnf } : {}),
    };
  });
}

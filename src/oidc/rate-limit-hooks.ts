// What oidc-provider contributes to the rate limits (src/http/rate-limits.ts) and to the allowed
// networks of a client, on every endpoint where a client authenticates:
//  - its error events count unauthenticated failures per address, and client-authentication
//    failures at /token go to the per-minute audit aggregate;
//  - the client lookup that starts client authentication refuses a client named from outside
//    its allowed networks with the same invalid_client as a wrong secret, at /token,
//    introspection and revocation alike (before the credentials are even checked, so an
//    outsider cannot test a stolen secret);
//  - the per-client token budget is taken once the client has authenticated (tokenRequestLimit).
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { ClientAuthFailures } from '../audit/client-auth-failures.ts';
import type { ClientCache, ClientRecord } from '../clients/client-cache.ts';
import { ipAllowed } from '../clients/networks.ts';
import { addressKey } from '../http/address-key.ts';
import type { LimitedEndpoint, RateLimits } from '../http/rate-limits.ts';

const AUTHENTICATING_ROUTES = new Set(['token', 'introspection', 'revocation']);

/** 429 in oidc-provider's error shape; see tooManyRequestsBody for the choice of code. */
class TooManyRequests extends errors.OIDCProviderError {
  constructor(seconds: number) {
    super(429, 'temporarily_unavailable');
    this.error_description = `too many requests: retry after ${seconds} seconds`;
  }
}

const requestIdOf = (ctx: KoaContextWithOIDC) => String(ctx.res.getHeader('x-request-id') ?? '') || null;

export function attachRateLimits(p: Provider, deps: { limits: RateLimits; clients: ClientCache; authFailures: ClientAuthFailures }): void {
  const { limits } = deps;
  const count = (endpoint: LimitedEndpoint, ctx: KoaContextWithOIDC) => void limits.addressFailed(ctx.ip, endpoint, requestIdOf(ctx));
  // No client, or the client's credentials did not hold: the caller is not authenticated.
  const unauthenticated = (ctx: KoaContextWithOIDC, err: any) => err?.error === 'invalid_client' || !ctx.oidc?.client;

  p.on('grant.error', (ctx, err: any) => {
    if (err?.error === 'invalid_client') deps.authFailures.record(ctx.oidc?.client?.clientId ?? null, addressKey(ctx.ip));
    if (unauthenticated(ctx, err)) count('token', ctx);
  });
  p.on('introspection.error', (ctx, err) => unauthenticated(ctx, err) && count('introspection', ctx));
  p.on('revocation.error', (ctx, err) => unauthenticated(ctx, err) && count('revocation', ctx));
  p.on('device_authorization.error', (ctx, err) => unauthenticated(ctx, err) && count('device', ctx));
  // Errors oidc-provider cannot send back to a client (unknown client, unregistered redirect URI).
  p.on('authorization.error', (ctx, err: any) => {
    if (['invalid_client', 'invalid_redirect_uri'].includes(err?.error) || !ctx.oidc?.client) count('authorization', ctx);
  });

  const ClientClass = p.Client as any;
  const find = ClientClass.find as (id: string, ...rest: unknown[]) => Promise<unknown>;
  ClientClass.find = async function findWithinNetworks(this: unknown, id: string, ...rest: unknown[]) {
    const client = await find.call(this, id, ...rest);
    const ctx = Provider.ctx as KoaContextWithOIDC | undefined;
    // The first lookup of the request is client authentication's; later ones (a token's own client) are not checked.
    if (client && ctx && AUTHENTICATING_ROUTES.has(ctx.oidc.route) && !ctx.oidc.entities.Client) {
      const record = await deps.clients.get(id);
      if (record && record.allowedCidrs.length > 0 && !ipAllowed(ctx.ip, record.allowedCidrs)) {
        throw new errors.InvalidClientAuth('source address not in the client allowed networks');
      }
    }
    return client;
  };
}

/** The per-client budget at /token, taken once per request after the client authenticated. */
export function tokenRequestLimit(limits: RateLimits) {
  const counted = new WeakSet<object>();
  return async (ctx: KoaContextWithOIDC, record: ClientRecord): Promise<void> => {
    if (ctx.oidc.route !== 'token' || counted.has(ctx)) return;
    counted.add(ctx);
    const wait = await limits.clientToken(record.clientId, record.rateLimit, ctx.ip, requestIdOf(ctx));
    if (wait) {
      ctx.set('retry-after', String(wait));
      throw new TooManyRequests(wait);
    }
  };
}

// Gatehouse checking its own access tokens online, for userinfo (OIDC Core §5.3) and introspection
// (RFC 7662): the offline checks every resource server makes (RFC 9068 §4: signature by a key
// still in /jwks, iss, aud, typ, exp), plus what only Gatehouse knows: the grant behind the token
// still exists (sign-out, refresh-token revocation or reuse, a password change delete it), the
// person is still active, or, for a service token, the client still exists.
import { createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose';
import * as accounts from '../accounts/accounts.repository.ts';
import type { ClientCache } from '../clients/client-cache.ts';
import type { Db } from '../db/handle.ts';
import type { KeySet } from '../keys/keys.service.ts';
import { publicJwks } from './jwks.ts';
import { findLiveGrant } from './grants.repository.ts';

export interface AccessTokenCheckDeps {
  issuer: string;
  audience: string;
  keys: () => KeySet;
  db: Db;
  clients: ClientCache;
}

/** The claim naming the grant a person's access token came from (added in extraTokenClaims). */
export const GRANT_CLAIM = 'grant_id';

export interface LiveAccessToken {
  claims: JWTPayload & { client_id: string; sub: string; scope?: string };
  /** The person's record for a person's token; undefined for a service token. */
  account?: { id: string; email: string };
}

const ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'];

export function accessTokenChecker(deps: AccessTokenCheckDeps) {
  let cached: { keys: KeySet; jwks: ReturnType<typeof createLocalJWKSet> } | null = null;
  const jwks = () => {
    const keys = deps.keys();
    if (cached?.keys !== keys) cached = { keys, jwks: createLocalJWKSet(publicJwks(keys) as any) };
    return cached.jwks;
  };

  /** The token's claims when it is valid and still alive now; undefined otherwise (never throws for a bad token). */
  return async function check(token: unknown): Promise<LiveAccessToken | undefined> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 8192) return undefined;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks(), {
        algorithms: ALGORITHMS,
        typ: 'at+jwt',
        issuer: deps.issuer,
        audience: deps.audience,
        requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id'],
      }));
    } catch {
      return undefined;
    }
    const sub = payload.sub;
    const clientId = payload.client_id;
    if (typeof sub !== 'string' || typeof clientId !== 'string') return undefined;
    const claims = payload as LiveAccessToken['claims'];
    const grantId = payload[GRANT_CLAIM];
    if (typeof grantId === 'string') {
      const grant = await findLiveGrant(deps.db, grantId);
      // A delegated token (./token-exchange.ts, `act`) keeps the person's grant but names the exchanging client.
      if (!grant || grant.accountId !== sub || (grant.clientId !== clientId && payload.act === undefined)) return undefined;
      const row = await accounts.findAccount(deps.db, sub);
      if (!row || row.status !== 'active') return undefined;
      return { claims, account: { id: row.id, email: row.email } };
    }
    // A service token (client credentials): sub is the client itself, and it must still exist.
    // A disabled agent's actor token is no longer active either.
    const client = sub === clientId ? await deps.clients.get(clientId) : null;
    if (client && !client.disabled) return { claims };
    return undefined;
  };
}

export type AccessTokenCheck = ReturnType<typeof accessTokenChecker>;

// verifyLogoutToken: the receiving side of OpenID Connect Back-Channel Logout 1.0 (§2.6), for the
// agentserver's backchannel_logout_uri. A token passes only when:
//  - it is signed by a key in Gatehouse's JWKS with an allowed asymmetric algorithm;
//  - its header typ is logout+jwt (§2.4), so an ID or access token cannot be replayed as one;
//  - iss is Gatehouse, aud is this client's id (the `clientId` option), iat is recent (within
//    `maxAgeSeconds`, 120 s by default, with the clock tolerance) and exp not passed;
//  - it names the session or the person: sid and/or sub;
//  - events holds the member http://schemas.openid.net/event/backchannel-logout, an object;
//  - it carries no nonce (a nonce would make it usable as an ID token);
//  - its jti was not accepted before: a bounded in-memory cache keeps accepted jtis until their
//    token would be refused as too old anyway, so the cache cannot grow without end.
import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { toVerifyError, VerifyError } from './errors.ts';

export const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface LogoutTokenClaims {
  iss: string;
  aud: string | string[];
  iat: number;
  jti: string;
  /** The person (Gatehouse's account id, the `sub` of their tokens). */
  sub?: string;
  /** The sign-in session that ended: the `sid` of the ID and access tokens issued in it. */
  sid?: string;
  events: Record<string, unknown>;
  [claim: string]: unknown;
}

export interface LogoutVerifierOptions {
  issuer: string;
  clientId: string;
  algorithms: string[];
  clockTolerance: number;
  getKey: JWTVerifyGetKey;
  maxAgeSeconds?: number;
  replayCacheSize?: number;
}

export function logoutTokenVerifier(o: LogoutVerifierOptions): (token: string) => Promise<LogoutTokenClaims> {
  const maxAge = o.maxAgeSeconds ?? 120;
  const maxEntries = o.replayCacheSize ?? 10_000;
  /** jti → until when (epoch seconds) it must be remembered. Insertion order is age order. */
  const seen = new Map<string, number>();

  function remember(jti: string, until: number) {
    const now = Math.floor(Date.now() / 1000);
    for (const [k, t] of seen) {
      if (t > now && seen.size < maxEntries) break;
      seen.delete(k); // expired, or the oldest entry when full
    }
    seen.set(jti, until);
  }

  return async function verifyLogoutToken(token: string): Promise<LogoutTokenClaims> {
    if (typeof token !== 'string' || token === '') throw new VerifyError('malformed', 'no logout token');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, o.getKey, {
        algorithms: o.algorithms,
        typ: 'logout+jwt',
        issuer: o.issuer,
        audience: o.clientId,
        clockTolerance: o.clockTolerance,
        maxTokenAge: maxAge,
        requiredClaims: ['iss', 'aud', 'iat', 'jti', 'events'],
      }));
    } catch (err) {
      throw toVerifyError(err);
    }
    const events = payload.events as Record<string, unknown> | undefined;
    const event = events && typeof events === 'object' && !Array.isArray(events) ? events[LOGOUT_EVENT] : undefined;
    if (!event || typeof event !== 'object' || Array.isArray(event)) {
      throw new VerifyError('malformed', `the events claim has no ${LOGOUT_EVENT} member`);
    }
    if ('nonce' in payload) throw new VerifyError('malformed', 'a logout token must not carry a nonce');
    const sub = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined;
    const sid = typeof payload.sid === 'string' && payload.sid !== '' ? payload.sid : undefined;
    if (!sub && !sid) throw new VerifyError('malformed', 'a logout token must name sub or sid');
    if (typeof payload.jti !== 'string' || payload.jti === '' || payload.jti.length > 256) {
      throw new VerifyError('malformed', 'the jti claim must be a short string');
    }
    const key = `${payload.iss}\u0000${payload.jti}`;
    const now = Math.floor(Date.now() / 1000);
    const known = seen.get(key);
    if (known !== undefined && known > now) throw new VerifyError('replayed', 'this logout token was already accepted');
    remember(key, payload.iat! + maxAge + o.clockTolerance);
    return { ...payload, sub, sid, events } as LogoutTokenClaims;
  };
}

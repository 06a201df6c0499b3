// Sign-in sessions end (issue 7 point 5; OWASP ASVS V3.3, Keycloak's SSO Session Idle / Max):
//  - idle: GATEHOUSE_SESSION_IDLE_TTL after the last authorization request (oidc-provider saves
//    the session on each, with ttl.Session below) or the last refresh (extendOnRefresh below);
//  - absolute: GATEHOUSE_SESSION_MAX_TTL after the sign-in (loginTs); no activity extends it;
//  - a person's refresh tokens are bound to the session (expiresWithSession), so oidc-provider
//    refuses them once the session is gone: idle-expired, past its cap, or ended at logout.
// Client credentials have no session and no refresh token; none of this applies to them.
// GATEHOUSE_REFRESH_IDLE_TTL / _ABSOLUTE_TTL still cap each refresh token on its own: a person's
// refresh token ends at the earliest of the four limits.
import type Provider from 'oidc-provider';
import type { Db } from '../db/handle.ts';
import { extendSessionByUid } from './sessions.repository.ts';

export interface SessionLimits {
  idleTtl: number;
  maxTtl: number;
}

const epoch = () => Math.floor(Date.now() / 1000);

/** ttl.Session: the idle lifetime, never past the absolute cap counted from the sign-in. */
export function sessionTtl(limits: SessionLimits, session: { loginTs?: number }, now = epoch()): number {
  if (typeof session.loginTs !== 'number') return limits.idleTtl;
  const left = session.loginTs + limits.maxTtl - now;
  // oidc-provider needs a positive number; a session past its cap is not found any more anyway,
  // since its stored expiry was never set beyond loginTs + max.
  return Math.max(1, Math.min(limits.idleTtl, left));
}

/** Every token derived from a person's sign-in lives no longer than the session (default: only without offline_access). */
export const expiresWithSession = async () => true;

/**
 * A successful refresh restarts the idle timer of the session its token belongs to, before the
 * response leaves (so the next request already sees it).
 */
export function extendOnRefresh(provider: Provider, db: Db, limits: SessionLimits): void {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status !== 200 || ctx.oidc?.route !== 'token' || ctx.oidc.params?.grant_type !== 'refresh_token') return;
    const rt = ctx.oidc.entities?.RefreshToken as { sessionUid?: string; expiresWithSession?: boolean } | undefined;
    if (rt?.expiresWithSession && typeof rt.sessionUid === 'string') {
      await extendSessionByUid(db, rt.sessionUid, epoch(), limits.idleTtl, limits.maxTtl);
    }
  });
}

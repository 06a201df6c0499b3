// Admin console sessions: a random id in an HttpOnly cookie, the row server-side. A session
// stands only while the account is active and the session is younger than the account's
// sessions_valid_after ("end all sessions", disable and a password change end it too); who may
// do what is decided again on every request from the account as it is now (src/admin/access.ts).
import crypto from 'node:crypto';
import { findAccount, type Account } from '../accounts/accounts.service.ts';
import * as repo from './admin.repository.ts';
import { FRESH_AUTH_SECONDS } from '../oidc/lifetimes.ts';
import type { Db } from '../db/handle.ts';

/** OWASP Session Management Cheat Sheet: 15–30 minutes idle for high-value applications. */
export const ADMIN_SESSION_IDLE_SECONDS = 30 * 60;
/** An absolute cap, whatever the activity: a working day. */
export const ADMIN_SESSION_MAX_SECONDS = 8 * 3600;
/** last_seen_at is written at most this often, not on every request. */
const TOUCH_EVERY_SECONDS = 60;

export const ADMIN_SESSION_COOKIE = 'gh_admin';

export interface AdminSession {
  id: string;
  accountId: string;
  authTime: Date;
  amr: string[];
  acr: string | null;
  createdAt: Date;
  expiresAt: Date;
}

const hashId = (token: string) => crypto.createHash('sha256').update(token, 'utf8').digest('base64url');
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** A new session; returns the cookie value (the row keeps only its hash). */
export async function createAdminSession(
  db: Db,
  s: { accountId: string; authTime: Date; amr: string[]; acr: string | null; now?: Date },
): Promise<{ token: string; session: AdminSession }> {
  const now = s.now ?? new Date();
  const token = crypto.randomBytes(32).toString('base64url');
  // The row's expiry is the absolute cap; the idle limit is checked against last_seen_at.
  const expiresAt = new Date(now.getTime() + ADMIN_SESSION_MAX_SECONDS * 1000);
  const id = hashId(token);
  await repo.deleteExpiredSessions(db, now);
  await repo.insertSession(db, {
    id,
    account_id: s.accountId,
    auth_time: s.authTime,
    amr: s.amr,
    acr: s.acr,
    created_at: now,
    last_seen_at: now,
    expires_at: expiresAt,
  });
  return { token, session: { id, accountId: s.accountId, authTime: s.authTime, amr: s.amr, acr: s.acr, createdAt: now, expiresAt } };
}

export type SessionLookup = { session: AdminSession; account: Account } | null;

/**
 * The session for a cookie value with its account read now, or null: unknown, expired (idle or
 * absolute), account gone or disabled, or ended by "end all sessions" since it began.
 */
export async function findAdminSession(db: Db, token: unknown, now = new Date()): Promise<SessionLookup> {
  if (typeof token !== 'string' || !TOKEN_RE.test(token)) return null;
  const row = await repo.findSession(db, hashId(token), now);
  if (!row) return null;
  const createdAt = new Date(row.created_at);
  const lastSeen = new Date(row.last_seen_at);
  const idleExpired = now.getTime() - lastSeen.getTime() > ADMIN_SESSION_IDLE_SECONDS * 1000;
  const tooOld = now.getTime() - createdAt.getTime() > ADMIN_SESSION_MAX_SECONDS * 1000;
  const account = idleExpired || tooOld ? null : await findAccount(db, row.account_id);
  const ended = account?.sessions_valid_after && account.sessions_valid_after.getTime() > createdAt.getTime();
  if (!account || account.status !== 'active' || ended) {
    await repo.deleteSession(db, row.id);
    return null;
  }
  if (now.getTime() - lastSeen.getTime() > TOUCH_EVERY_SECONDS * 1000) {
    // Sliding idle expiry, capped by the absolute lifetime.
    await repo.touchSession(db, row.id, now);
  }
  return {
    account,
    session: {
      id: row.id,
      accountId: row.account_id,
      authTime: new Date(row.auth_time),
      amr: row.amr,
      acr: row.acr,
      createdAt,
      expiresAt: new Date(row.expires_at),
    },
  };
}

export async function endAdminSession(db: Db, token: unknown): Promise<void> {
  if (typeof token === 'string' && TOKEN_RE.test(token)) await repo.deleteSession(db, hashId(token));
}

/** Is the session's authentication recent enough for a change? */
export function isFresh(session: AdminSession, now = new Date(), maxAgeSeconds = FRESH_AUTH_SECONDS): boolean {
  return now.getTime() - session.authTime.getTime() <= maxAgeSeconds * 1000;
}

// A person's sign-in sessions, as oidc-provider stores them (model 'Session').
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export interface SessionInfo {
  /** The session's uid: shown and used to end it (the row id is the cookie's value, kept private). */
  uid: string;
  signedInAt: Date | null;
  expiresAt: Date | null;
  amr: string[];
  current: boolean;
}

export async function listSessions(db: Kysely<Database>, accountId: string, currentUid: string | null): Promise<SessionInfo[]> {
  const rows = await db
    .selectFrom('oidc_payload')
    .select(['uid', 'payload', 'expires_at'])
    .where('model', '=', 'Session')
    .where(sql<string>`payload->>'accountId'`, '=', accountId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
    .execute();
  return rows
    .map((r) => {
      const p = r.payload as { loginTs?: number; amr?: string[] };
      return { uid: r.uid ?? '', signedInAt: p.loginTs ? new Date(p.loginTs * 1000) : null, expiresAt: r.expires_at ? new Date(r.expires_at) : null, amr: p.amr ?? [], current: r.uid === currentUid };
    })
    .sort((a, b) => (b.signedInAt?.getTime() ?? 0) - (a.signedInAt?.getTime() ?? 0));
}

/** End one of the person's sessions; its refresh tokens (bound to the session) stop working. */
export async function endSession(db: Kysely<Database>, accountId: string, uid: string): Promise<boolean> {
  const res = await db
    .deleteFrom('oidc_payload')
    .where('model', '=', 'Session')
    .where('uid', '=', uid)
    .where(sql<string>`payload->>'accountId'`, '=', accountId)
    .executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

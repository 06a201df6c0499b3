// A person's sign-in sessions, as oidc-provider stores them (model 'Session').
import { deleteSessionByUid, listSessionRows } from '../accounts/accounts.repository.ts';
import type { Db } from '../db/handle.ts';
import { inTransaction } from '../db/transaction.ts';
import { enqueueAccountSessions } from '../oidc/backchannel-logout.repository.ts';

export interface SessionInfo {
  /** The session's uid: shown and used to end it (the row id is the cookie's value, kept private). */
  uid: string;
  signedInAt: Date | null;
  expiresAt: Date | null;
  amr: string[];
  current: boolean;
}

export async function listSessions(db: Db, accountId: string, currentUid: string | null): Promise<SessionInfo[]> {
  const rows = await listSessionRows(db, accountId, new Date());
  return rows
    .map((r) => {
      const p = r.payload as { loginTs?: number; amr?: string[] };
      return {
        uid: r.uid ?? '',
        signedInAt: p.loginTs ? new Date(p.loginTs * 1000) : null,
        expiresAt: r.expires_at ? new Date(r.expires_at) : null,
        amr: p.amr ?? [],
        current: r.uid === currentUid,
      };
    })
    .sort((a, b) => (b.signedInAt?.getTime() ?? 0) - (a.signedInAt?.getTime() ?? 0));
}

/**
 * End one of the person's sessions; its refresh tokens (bound to the session) stop working, and
 * its clients hear it by back-channel logout.
 */
export function endSession(db: Db, accountId: string, uid: string): Promise<boolean> {
  return inTransaction(db, async (trx) => {
    await enqueueAccountSessions(trx, accountId, 'session_ended', { sessionUid: uid });
    return deleteSessionByUid(trx, accountId, uid);
  });
}

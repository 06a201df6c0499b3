import type { Db } from '../db/handle.ts';

/** WebAuthn challenges of ceremonies that were started and never finished. */
export async function deleteExpiredChallenges(db: Db, now: Date = new Date()): Promise<number> {
  const res = await db.deleteFrom('webauthn_challenge').where('expires_at', '<', now).executeTakeFirst();
  return Number(res.numDeletedRows);
}

import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/** WebAuthn challenges of ceremonies that were started and never finished. */
export async function deleteExpiredChallenges(db: Kysely<Database>, now: Date = new Date()): Promise<number> {
  const res = await db.deleteFrom('webauthn_challenge').where('expires_at', '<', now).executeTakeFirst();
  return Number(res.numDeletedRows);
}

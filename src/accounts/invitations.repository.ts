import { type Transaction, sql } from 'kysely';
import type { Database, InvitationPurposeColumn, InvitationRow } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

/**
 * Serialize invitation changes for one email until the transaction ends, so two owners
 * inviting the same person at once still leave exactly one usable link.
 */
export async function lockEmail(trx: Transaction<Database>, email: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${`invitation:${email}`}))`.execute(trx);
}

/** Older unused links for this email stop working (kept, not deleted, for the record). */
export async function invalidateUnused(db: Db, email: string, now: Date): Promise<number> {
  const res = await db
    .updateTable('invitation')
    .set({ expires_at: now })
    .where('email', '=', email)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

export async function insertInvitation(
  db: Db,
  row: {
    id: string;
    token_hash: string;
    email: string;
    role: string;
    permissions: string[];
    purpose: InvitationPurposeColumn;
    account_id: string | null;
    created_by: string | null;
    expires_at: Date;
  },
): Promise<InvitationRow> {
  return db
    .insertInto('invitation')
    .values({ ...row, permissions: JSON.stringify(row.permissions) })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export function findValidByHash(db: Db, tokenHash: string, now: Date): Promise<InvitationRow | undefined> {
  return db
    .selectFrom('invitation')
    .selectAll()
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

/** Single use by construction: of two concurrent consumers, the second matches no row. */
export function consumeByHash(db: Db, tokenHash: string, now: Date): Promise<InvitationRow | undefined> {
  return db
    .updateTable('invitation')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
}

export async function setAccount(db: Db, id: string, accountId: string): Promise<void> {
  await db.updateTable('invitation').set({ account_id: accountId }).where('id', '=', id).execute();
}

/** A link whose holder failed its proof too often: it stops working now (kept for the record). */
export async function expireNow(db: Db, id: string, now: Date): Promise<void> {
  await db.updateTable('invitation').set({ expires_at: now }).where('id', '=', id).where('used_at', 'is', null).execute();
}

/**
 * Count one proof attempt on a usable link, before the proof is checked (so that parallel
 * guesses cannot all pass a check made earlier); the count after it, or null for a dead link.
 */
export async function addProofAttempt(db: Db, id: string, now: Date): Promise<number | null> {
  const row = await db
    .updateTable('invitation')
    .set((eb) => ({ proof_attempts: eb('proof_attempts', '+', 1) }))
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returning('proof_attempts')
    .executeTakeFirst();
  return row ? row.proof_attempts : null;
}

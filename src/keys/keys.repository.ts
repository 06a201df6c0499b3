import { type Transaction, sql } from 'kysely';
import type { Database, KeyState, NewSigningKey, SigningKeyRow } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export async function lockKeys(trx: Transaction<Database>): Promise<void> {
  // Serialize key changes across instances: two instances creating the first keys, or
  // rotating at once, must not both succeed.
  await sql`select pg_advisory_xact_lock(hashtext('gatehouse.signing_keys'))`.execute(trx);
}

export function allKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_key').selectAll().orderBy('created_at').execute();
}

/** One key whose private part is still stored, to check that the master key opens it. */
export function anySealedKey(db: Db): Promise<Pick<SigningKeyRow, 'kid' | 'private_jwk_sealed'> | undefined> {
  return db
    .selectFrom('signing_key')
    .select(['kid', 'private_jwk_sealed'])
    .where('private_jwk_sealed', '!=', '')
    .limit(1)
    .executeTakeFirst();
}

export function keyInState(db: Db, alg: string, state: KeyState): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('signing_key').selectAll().where('alg', '=', alg).where('state', '=', state).executeTakeFirst();
}

export async function insertKey(db: Db, key: NewSigningKey): Promise<void> {
  await db.insertInto('signing_key').values(key).execute();
}

export async function retireKey(db: Db, kid: string, now: Date, publishUntil: Date): Promise<void> {
  await db
    .updateTable('signing_key')
    .set({ state: 'retired', retired_at: now, publish_until: publishUntil })
    .where('kid', '=', kid)
    .execute();
}

export async function activateKey(db: Db, kid: string, now: Date): Promise<void> {
  await db.updateTable('signing_key').set({ state: 'current', activated_at: now }).where('kid', '=', kid).execute();
}

/**
 * Retired keys whose tokens have all expired are no longer published: their private parts are
 * erased, their public parts kept so that old audit checkpoints signed with them still verify.
 */
export async function eraseExpiredKeys(db: Db, now: Date): Promise<number> {
  const res = await db
    .updateTable('signing_key')
    .set({ private_jwk_sealed: '' })
    .where('state', '=', 'retired')
    .where('publish_until', '<', now)
    .where('private_jwk_sealed', '!=', '')
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

export function keyByKid(db: Db, kid: string): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('signing_key').selectAll().where('kid', '=', kid).executeTakeFirst();
}

/** Every key of an algorithm that is not yet revoked (next, current, retired). */
export function unrevokedKeys(db: Db, alg: string): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_key').selectAll().where('alg', '=', alg).where('state', '!=', 'revoked').execute();
}

/**
 * A revoked key keeps only its public part (old audit checkpoints name it); its private part is
 * erased at once, so no instance can load it to sign again.
 */
export async function revokeKeyRow(db: Db, kid: string, now: Date): Promise<void> {
  await db
    .updateTable('signing_key')
    .set({ state: 'revoked', revoked_at: now, publish_until: null, private_jwk_sealed: '' })
    .where('kid', '=', kid)
    .execute();
}

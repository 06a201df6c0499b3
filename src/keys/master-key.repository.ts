// The master_key_check row and the sealed columns a master-key rotation rewrites
// (docs/architecture.md, "Secrets at rest").
import { sql, type Transaction } from 'kysely';
import type { Database, MasterKeyCheckTable } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';
import type { Selectable } from 'kysely';

export type MasterKeyCheckRow = Selectable<MasterKeyCheckTable>;

export function keyCheckRow(db: Db): Promise<MasterKeyCheckRow | undefined> {
  return db.selectFrom('master_key_check').selectAll().where('id', '=', 1).executeTakeFirst();
}

/**
 * Hold off every writer of a sealed column for the rest of the transaction (readers go on): a
 * value sealed under the old key after it was read here would be left behind.
 */
export async function lockSealedTables(trx: Transaction<Database>): Promise<void> {
  await sql`lock table signing_key, totp_credential, enrollment, master_key_check in exclusive mode`.execute(trx);
}

export function sealedSigningKeys(db: Db) {
  return db.selectFrom('signing_key').select(['kid', 'private_jwk_sealed']).where('private_jwk_sealed', '!=', '').execute();
}

export async function setSigningKeySealed(db: Db, kid: string, sealed: string): Promise<void> {
  await db.updateTable('signing_key').set({ private_jwk_sealed: sealed }).where('kid', '=', kid).execute();
}

export function sealedTotpSeeds(db: Db) {
  return db.selectFrom('totp_credential').select(['id', 'seed_sealed']).execute();
}

export async function setTotpSeedSealed(db: Db, id: string, sealed: string): Promise<void> {
  await db.updateTable('totp_credential').set({ seed_sealed: sealed }).where('id', '=', id).execute();
}

export function sealedEnrollmentSeeds(db: Db) {
  return db
    .selectFrom('enrollment')
    .select(['invitation_id', 'totp_seed_sealed'])
    .where('totp_seed_sealed', 'is not', null)
    .execute() as Promise<{ invitation_id: string; totp_seed_sealed: string }[]>;
}

export async function setEnrollmentSeedSealed(db: Db, invitationId: string, sealed: string): Promise<void> {
  await db.updateTable('enrollment').set({ totp_seed_sealed: sealed }).where('invitation_id', '=', invitationId).execute();
}

export async function saveKeyCheck(db: Db, row: { check_value: string; backup_code_key_sealed: string; rotated_at: Date }): Promise<void> {
  await db
    .insertInto('master_key_check')
    .values({ id: 1, ...row })
    .onConflict((oc) => oc.column('id').doUpdateSet(row))
    .execute();
}

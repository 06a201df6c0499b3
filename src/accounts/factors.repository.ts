// Second factors of a person: TOTP credentials and backup codes (src/mfa/totp.ts,
// src/mfa/backup-codes.ts hold the logic; the Kysely code lives here, next to the account it
// belongs to). Every check-and-use is one conditional UPDATE, so a code cannot be spent twice
// by two concurrent requests.
import { type Expression, type Selectable, expressionBuilder, sql } from 'kysely';
import type { Database, TotpCredentialTable } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export type TotpRow = Selectable<TotpCredentialTable>;

export async function insertTotp(db: Db, row: { id: string; account_id: string; seed_sealed: string }): Promise<void> {
  await db.insertInto('totp_credential').values(row).execute();
}

/** Abandoned enrollments: unconfirmed rows that a new enrollment replaces. */
export async function deleteUnconfirmedTotp(db: Db, accountId: string): Promise<void> {
  await db.deleteFrom('totp_credential').where('account_id', '=', accountId).where('confirmed', '=', false).execute();
}

export function findUnconfirmedTotp(db: Db, accountId: string, id: string): Promise<TotpRow | undefined> {
  return db
    .selectFrom('totp_credential')
    .selectAll()
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('confirmed', '=', false)
    .executeTakeFirst();
}

export function findConfirmedTotp(db: Db, accountId: string): Promise<TotpRow | undefined> {
  return db
    .selectFrom('totp_credential')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('confirmed', '=', true)
    .orderBy('created_at', 'desc')
    .executeTakeFirst();
}

/** Confirm and record the confirming code's step, so that code cannot sign in afterwards. */
export async function confirmTotp(db: Db, accountId: string, id: string, step: number): Promise<boolean> {
  const res = await db
    .updateTable('totp_credential')
    .set({ confirmed: true, last_used_step: step })
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('confirmed', '=', false)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function deleteOtherTotp(db: Db, accountId: string, keepId: string): Promise<void> {
  await db.deleteFrom('totp_credential').where('account_id', '=', accountId).where('id', '!=', keepId).execute();
}

export async function deleteAllTotp(db: Db, accountId: string): Promise<number> {
  const res = await db.deleteFrom('totp_credential').where('account_id', '=', accountId).executeTakeFirst();
  return Number(res.numDeletedRows);
}

/**
 * RFC 6238 §5.2: a code is accepted once. The step moves forward only: of two requests with
 * the same code, the second finds `last_used_step` already equal to it and updates nothing.
 */
export async function recordTotpStep(db: Db, id: string, step: number): Promise<boolean> {
  const res = await db
    .updateTable('totp_credential')
    .set({ last_used_step: step })
    .where('id', '=', id)
    .where('confirmed', '=', true)
    .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', String(step))]))
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function replaceBackupCodes(db: Db, accountId: string, hashes: string[]): Promise<void> {
  await db.deleteFrom('backup_code').where('account_id', '=', accountId).execute();
  if (hashes.length)
    await db
      .insertInto('backup_code')
      .values(hashes.map((code_hash) => ({ account_id: accountId, code_hash })))
      .execute();
}

export async function deleteBackupCodes(db: Db, accountId: string): Promise<number> {
  const res = await db.deleteFrom('backup_code').where('account_id', '=', accountId).executeTakeFirst();
  return Number(res.numDeletedRows);
}

export async function spendBackupCode(db: Db, accountId: string, hash: string): Promise<boolean> {
  const res = await db
    .updateTable('backup_code')
    .set({ used_at: new Date() })
    .where('account_id', '=', accountId)
    .where('code_hash', '=', hash)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function countUnusedBackupCodes(db: Db, accountId: string): Promise<number> {
  const row = await db
    .selectFrom('backup_code')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('account_id', '=', accountId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const eb = expressionBuilder<Database, never>();

/**
 * The one factor-summary query, as columns: a confirmed TOTP credential, passkeys, unused backup
 * codes of the account `accountId` names (a value, or a reference to an outer query's id).
 */
export function factorColumns(accountId: Expression<string>) {
  return [
    eb.exists(eb.selectFrom('totp_credential').select('id').where('account_id', '=', accountId).where('confirmed', '=', true)).as('totp'),
    eb
      .selectFrom('webauthn_credential')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('account_id', '=', accountId)
      .as('passkeys'),
    eb
      .selectFrom('backup_code')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('account_id', '=', accountId)
      .where('used_at', 'is', null)
      .as('backup_codes_left'),
  ] as const;
}

export function toFactorSummary(row: { totp: unknown; passkeys: number | null; backup_codes_left: number | null }) {
  return { totp: Boolean(row.totp), passkeys: Number(row.passkeys ?? 0), backup_codes_left: Number(row.backup_codes_left ?? 0) };
}

export async function factorSummary(db: Db, accountId: string): Promise<{ totp: boolean; passkeys: number; backup_codes_left: number }> {
  return toFactorSummary(await db.selectNoFrom(factorColumns(sql.val(accountId))).executeTakeFirstOrThrow());
}

export async function deletePasskeys(db: Db, accountId: string): Promise<number> {
  const res = await db.deleteFrom('webauthn_credential').where('account_id', '=', accountId).executeTakeFirst();
  return Number(res.numDeletedRows);
}

import { type Transaction, type Updateable, sql } from 'kysely';
import type { AccountRow, AccountTable, Database } from '../db/schema.ts';
import { factorColumns, toFactorSummary } from './factors.repository.ts';
import type { Db } from '../db/handle.ts';

/** Run `fn` in a transaction, or in the caller's when `db` already is one (composable services). */

export function findAccount(db: Db, id: string): Promise<AccountRow | undefined> {
  return db.selectFrom('account').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findAccountByEmail(db: Db, email: string): Promise<AccountRow | undefined> {
  return db.selectFrom('account').selectAll().where('email', '=', email).executeTakeFirst();
}

/** Row lock for read-modify-write checks (last owner), so two concurrent changes serialize. */
export function lockAccount(db: Transaction<Database>, id: string): Promise<AccountRow | undefined> {
  return db.selectFrom('account').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export interface AccountWithFactors extends AccountRow {
  totp_confirmed: boolean;
  passkeys: number;
  backup_codes_left: number;
}

export async function listAccounts(db: Db): Promise<AccountWithFactors[]> {
  const rows = await db
    .selectFrom('account as a')
    .selectAll('a')
    .select(factorColumns(sql.ref<string>('a.id')))
    .orderBy('a.created_at')
    .orderBy('a.id')
    .execute();
  return rows.map(({ totp, passkeys, backup_codes_left, ...account }) => {
    const f = toFactorSummary({ totp, passkeys, backup_codes_left });
    return { ...account, totp_confirmed: f.totp, passkeys: f.passkeys, backup_codes_left: f.backup_codes_left };
  });
}

export async function insertAccount(
  db: Db,
  row: { id: string; email: string; role: string; permissions: string[]; password_hash: string | null },
): Promise<AccountRow> {
  return db
    .insertInto('account')
    .values({
      id: row.id,
      email: row.email,
      role: row.role,
      permissions: JSON.stringify(row.permissions),
      status: 'active',
      password_hash: row.password_hash,
      password_changed_at: row.password_hash ? new Date() : null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateAccount(db: Db, id: string, changes: Updateable<AccountTable>): Promise<boolean> {
  const res = await db
    .updateTable('account')
    .set({ ...changes, updated_at: new Date() })
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function recordSignIn(db: Db, id: string, at: Date): Promise<void> {
  // Not updated_at: a sign-in is not a change to the account.
  await db.updateTable('account').set({ last_sign_in_at: at }).where('id', '=', id).execute();
}

/**
 * Active owners, locked: a demotion or a disable that checks this count holds the locks until
 * it commits, so two owners demoting each other at once cannot leave nobody in charge.
 */
export async function lockActiveOwners(db: Transaction<Database>): Promise<string[]> {
  const rows = await db
    .selectFrom('account')
    .select('id')
    .where('role', '=', 'owner')
    .where('status', '=', 'active')
    .orderBy('id')
    .forUpdate()
    .execute();
  return rows.map((r) => r.id);
}

export async function countActiveOwners(db: Db): Promise<number> {
  const row = await db
    .selectFrom('account')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('role', '=', 'owner')
    .where('status', '=', 'active')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

// Models whose payload names the person (oidc-provider's Session, Grant and tokens).
const PERSONAL_MODELS = [
  'Session',
  'Grant',
  'RefreshToken',
  'AuthorizationCode',
  'AccessToken',
  'BackchannelAuthenticationRequest',
  'DeviceCode',
];

/**
 * Delete a person's oidc-provider sessions, grants and tokens: every row of each of their
 * grants (whatever its model), then every row whose payload names them. `exceptSessionId`
 * keeps the session the change was made from.
 */
export async function deleteOidcRows(db: Db, accountId: string, exceptSessionId: string | null = null): Promise<number> {
  const grants = await db
    .deleteFrom('oidc_payload')
    .where('grant_id', 'in', (eb) =>
      eb
        .selectFrom('oidc_payload')
        .select('id')
        .where('model', '=', 'Grant')
        .where(sql<string>`payload->>'accountId'`, '=', accountId),
    )
    .executeTakeFirst();
  let query = db
    .deleteFrom('oidc_payload')
    .where('model', 'in', PERSONAL_MODELS)
    .where(sql<string>`payload->>'accountId'`, '=', accountId);
  if (exceptSessionId !== null) query = query.where((eb) => eb.not(eb.and([eb('model', '=', 'Session'), eb('id', '=', exceptSessionId)])));
  const rest = await query.executeTakeFirst();
  return Number(grants.numDeletedRows) + Number(rest.numDeletedRows);
}

/** A person's live oidc-provider sign-in sessions (model 'Session'). */
export function listSessionRows(db: Db, accountId: string, now: Date) {
  return db
    .selectFrom('oidc_payload')
    .select(['uid', 'payload', 'expires_at'])
    .where('model', '=', 'Session')
    .where(sql<string>`payload->>'accountId'`, '=', accountId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .execute();
}

export async function deleteSessionByUid(db: Db, accountId: string, uid: string): Promise<boolean> {
  const res = await db
    .deleteFrom('oidc_payload')
    .where('model', '=', 'Session')
    .where('uid', '=', uid)
    .where(sql<string>`payload->>'accountId'`, '=', accountId)
    .executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

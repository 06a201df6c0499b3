// The only Kysely code of the admin console: its sessions and its own client row.
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { AdminSessionTable, ClientRow, Database } from '../db/schema.ts';

type Q = Kysely<Database> | Transaction<Database>;

export type AdminSessionRow = Selectable<AdminSessionTable>;

export function insertSession(db: Q, row: { id: string; account_id: string; auth_time: Date; amr: string[]; acr: string | null; created_at: Date; last_seen_at: Date; expires_at: Date }): Promise<unknown> {
  return db
    .insertInto('admin_session')
    .values({ ...row, amr: JSON.stringify(row.amr) })
    .execute();
}

export function findSession(db: Q, id: string, now: Date): Promise<AdminSessionRow | undefined> {
  return db.selectFrom('admin_session').selectAll().where('id', '=', id).where('expires_at', '>', now).executeTakeFirst();
}

export async function touchSession(db: Q, id: string, now: Date): Promise<void> {
  await db.updateTable('admin_session').set({ last_seen_at: now }).where('id', '=', id).execute();
}

export async function deleteSession(db: Q, id: string): Promise<void> {
  await db.deleteFrom('admin_session').where('id', '=', id).execute();
}

export async function deleteExpiredSessions(db: Q, now: Date): Promise<number> {
  const res = await db.deleteFrom('admin_session').where('expires_at', '<=', now).executeTakeFirst();
  return Number(res.numDeletedRows);
}

export function findClientForUpdate(trx: Transaction<Database>, clientId: string): Promise<ClientRow | undefined> {
  return trx.selectFrom('client').selectAll().where('client_id', '=', clientId).forUpdate().executeTakeFirst();
}

/** Insert or overwrite a built-in client's row (two instances starting at once both succeed). */
export async function upsertBuiltInClient(trx: Transaction<Database>, row: { client_id: string; name: string; metadata: string }): Promise<void> {
  const values = { name: row.name, kind: 'browser' as const, metadata: row.metadata, secret_hash: null };
  await trx
    .insertInto('client')
    .values({ client_id: row.client_id, ...values, roles: '[]', permissions: '[]', allowed_cidrs: '[]' })
    .onConflict((oc) => oc.column('client_id').doUpdateSet({ ...values, previous_secret_hash: null, previous_secret_expires_at: null, updated_at: new Date() }))
    .execute();
}

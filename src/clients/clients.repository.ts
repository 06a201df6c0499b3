import { type Kysely, type Transaction, sql } from 'kysely';
import type { ClientRow, ClientUpdate, Database, NewClient } from '../db/schema.ts';

type Q = Kysely<Database> | Transaction<Database>;

export function findClient(db: Q, clientId: string): Promise<ClientRow | undefined> {
  return db.selectFrom('client').selectAll().where('client_id', '=', clientId).executeTakeFirst();
}

export function listClients(db: Q): Promise<ClientRow[]> {
  return db.selectFrom('client').selectAll().orderBy('created_at').orderBy('client_id').execute();
}

export async function insertClient(db: Q, row: NewClient): Promise<void> {
  await db.insertInto('client').values(row).execute();
}

export async function updateClient(db: Q, clientId: string, changes: ClientUpdate): Promise<boolean> {
  const res = await db.updateTable('client').set({ ...changes, updated_at: new Date() }).where('client_id', '=', clientId).executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function deleteClient(db: Q, clientId: string): Promise<boolean> {
  const res = await db.deleteFrom('client').where('client_id', '=', clientId).executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

/** A deleted client's grants, refresh tokens and unused codes go with it. */
export async function deleteClientGrants(db: Q, clientId: string): Promise<void> {
  await db.deleteFrom('oidc_payload').where('model', 'in', ['Grant', 'RefreshToken', 'AuthorizationCode']).where(sql<string>`payload->>'clientId'`, '=', clientId).execute();
}

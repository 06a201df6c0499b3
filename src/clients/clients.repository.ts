import { sql } from 'kysely';
import type { ClientRow, ClientUpdate, NewClient } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export function findClient(db: Db, clientId: string): Promise<ClientRow | undefined> {
  return db.selectFrom('client').selectAll().where('client_id', '=', clientId).executeTakeFirst();
}

export function listClients(db: Db): Promise<ClientRow[]> {
  // Agents are listed by src/agents/agents.repository.ts.
  return db.selectFrom('client').selectAll().where('kind', '!=', 'agent').orderBy('created_at').orderBy('client_id').execute();
}

export async function insertClient(db: Db, row: NewClient): Promise<void> {
  await db.insertInto('client').values(row).execute();
}

export async function updateClient(db: Db, clientId: string, changes: ClientUpdate): Promise<boolean> {
  const res = await db
    .updateTable('client')
    .set({ ...changes, updated_at: new Date() })
    .where('client_id', '=', clientId)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function deleteClient(db: Db, clientId: string): Promise<boolean> {
  const res = await db.deleteFrom('client').where('client_id', '=', clientId).executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

/** A deleted client's grants, refresh tokens and unused codes go with it. */
export async function deleteClientGrants(db: Db, clientId: string): Promise<void> {
  await db
    .deleteFrom('oidc_payload')
    .where('model', 'in', ['Grant', 'RefreshToken', 'AuthorizationCode'])
    .where(sql<string>`payload->>'clientId'`, '=', clientId)
    .execute();
}

export function findClientForUpdate(db: Db, clientId: string): Promise<ClientRow | undefined> {
  return db.selectFrom('client').selectAll().where('client_id', '=', clientId).forUpdate().executeTakeFirst();
}

/** Insert or overwrite a built-in client's row (two instances starting at once both succeed). */
export async function upsertBuiltInClient(db: Db, row: { client_id: string; name: string; metadata: string }): Promise<void> {
  const values = { name: row.name, kind: 'browser' as const, metadata: row.metadata, secret_hash: null };
  await db
    .insertInto('client')
    .values({ client_id: row.client_id, ...values, roles: '[]', permissions: '[]', allowed_cidrs: '[]' })
    .onConflict((oc) =>
      oc
        .column('client_id')
        .doUpdateSet({ ...values, previous_secret_hash: null, previous_secret_expires_at: null, updated_at: new Date() }),
    )
    .execute();
}

/** The first client that authenticates with tls_client_auth, if any (it needs a client CA). */
export async function findTlsClientAuthClient(db: Db): Promise<string | undefined> {
  const row = await db
    .selectFrom('client')
    .select('client_id')
    .where(sql<string>`metadata->>'token_endpoint_auth_method'`, '=', 'tls_client_auth')
    .executeTakeFirst();
  return row?.client_id;
}

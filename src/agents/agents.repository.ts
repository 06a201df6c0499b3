// Agents live in the client table as kind 'agent' (migrations/2026-12-01T15-00_agents.ts): the only
// Kysely code for them. Inserts, secret updates and deletes reuse src/clients/clients.repository.ts.
import type { ClientRow } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export function findAgent(db: Db, agentId: string): Promise<ClientRow | undefined> {
  return db.selectFrom('client').selectAll().where('client_id', '=', agentId).where('kind', '=', 'agent').executeTakeFirst();
}

export function listAgents(db: Db): Promise<ClientRow[]> {
  return db.selectFrom('client').selectAll().where('kind', '=', 'agent').orderBy('created_at').orderBy('client_id').execute();
}

export async function setAgentDisabled(db: Db, agentId: string, disabled: boolean): Promise<boolean> {
  const res = await db
    .updateTable('client')
    .set({ disabled, updated_at: new Date() })
    .where('client_id', '=', agentId)
    .where('kind', '=', 'agent')
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

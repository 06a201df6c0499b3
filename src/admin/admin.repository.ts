// The only Kysely code of the admin console: its sessions (its client row is in src/clients).
import type { Selectable } from 'kysely';
import type { AdminSessionTable } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export type AdminSessionRow = Selectable<AdminSessionTable>;

export function insertSession(
  db: Db,
  row: {
    id: string;
    account_id: string;
    auth_time: Date;
    amr: string[];
    acr: string | null;
    created_at: Date;
    last_seen_at: Date;
    expires_at: Date;
  },
): Promise<unknown> {
  return db
    .insertInto('admin_session')
    .values({ ...row, amr: JSON.stringify(row.amr) })
    .execute();
}

export function findSession(db: Db, id: string, now: Date): Promise<AdminSessionRow | undefined> {
  return db.selectFrom('admin_session').selectAll().where('id', '=', id).where('expires_at', '>', now).executeTakeFirst();
}

export async function touchSession(db: Db, id: string, now: Date): Promise<void> {
  await db.updateTable('admin_session').set({ last_seen_at: now }).where('id', '=', id).execute();
}

export async function deleteSession(db: Db, id: string): Promise<void> {
  await db.deleteFrom('admin_session').where('id', '=', id).execute();
}

export async function deleteExpiredSessions(db: Db, now: Date): Promise<number> {
  const res = await db.deleteFrom('admin_session').where('expires_at', '<=', now).executeTakeFirst();
  return Number(res.numDeletedRows);
}

// A sign-in in progress: who passed the first factor of this interaction, until when.
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

type Db = Kysely<Database>;

export interface LoginFlow {
  uid: string;
  accountId: string;
  amr: string[];
}

/** The first factor must be followed by the second within this time. */
export const FLOW_TTL_SECONDS = 600;

export async function startFlow(db: Db, uid: string, accountId: string, amr: string[]): Promise<void> {
  const row = { account_id: accountId, amr: JSON.stringify(amr), expires_at: new Date(Date.now() + FLOW_TTL_SECONDS * 1000) };
  await db.insertInto('login_flow').values({ uid, ...row }).onConflict((oc) => oc.column('uid').doUpdateSet(row)).execute();
}

export async function findFlow(db: Db, uid: string): Promise<LoginFlow | null> {
  const row = await db.selectFrom('login_flow').selectAll().where('uid', '=', uid).where('expires_at', '>', new Date()).executeTakeFirst();
  return row ? { uid: row.uid, accountId: row.account_id, amr: row.amr } : null;
}

export async function endFlow(db: Db, uid: string): Promise<void> {
  await db.deleteFrom('login_flow').where('uid', '=', uid).execute();
}

export async function deleteExpiredFlows(db: Db): Promise<number> {
  const res = await db.deleteFrom('login_flow').where('expires_at', '<', new Date()).executeTakeFirst();
  return Number(res.numDeletedRows);
}

// The `login_flow` table: who passed the first factor of an interaction (src/signin/login-flow.ts).
import type { Db } from '../db/handle.ts';

export async function upsertFlow(db: Db, uid: string, row: { account_id: string; amr: string; expires_at: Date }): Promise<void> {
  await db
    .insertInto('login_flow')
    .values({ uid, ...row })
    .onConflict((oc) => oc.column('uid').doUpdateSet(row))
    .execute();
}

/** The live flow with its account's email (null if the account is gone), in one query. */
export function findLiveFlow(db: Db, uid: string, now: Date) {
  return db
    .selectFrom('login_flow')
    .leftJoin('account', 'account.id', 'login_flow.account_id')
    .select(['login_flow.uid', 'login_flow.account_id', 'login_flow.amr', 'account.email'])
    .where('login_flow.uid', '=', uid)
    .where('login_flow.expires_at', '>', now)
    .executeTakeFirst();
}

export async function deleteFlow(db: Db, uid: string): Promise<void> {
  await db.deleteFrom('login_flow').where('uid', '=', uid).execute();
}

export async function deleteFlowsExpiredBefore(db: Db, now: Date): Promise<number> {
  const res = await db.deleteFrom('login_flow').where('expires_at', '<', now).executeTakeFirst();
  return Number(res.numDeletedRows);
}

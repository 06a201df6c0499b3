// A sign-in in progress: who passed the first factor of this interaction, until when.
import { SIGNIN_FLOW_TTL } from '../oidc/lifetimes.ts';
import * as repo from './login-flow.repository.ts';
import type { Db } from '../db/handle.ts';

export interface LoginFlow {
  uid: string;
  accountId: string;
  amr: string[];
}

export async function startFlow(db: Db, uid: string, accountId: string, amr: string[]): Promise<void> {
  await repo.upsertFlow(db, uid, {
    account_id: accountId,
    amr: JSON.stringify(amr),
    expires_at: new Date(Date.now() + SIGNIN_FLOW_TTL * 1000),
  });
}

/** The flow and its account's email ('' if the account is gone). */
export async function findFlow(db: Db, uid: string): Promise<(LoginFlow & { email: string }) | null> {
  const row = await repo.findLiveFlow(db, uid, new Date());
  return row ? { uid: row.uid, accountId: row.account_id, amr: row.amr, email: row.email ?? '' } : null;
}

export function endFlow(db: Db, uid: string): Promise<void> {
  return repo.deleteFlow(db, uid);
}

export function deleteExpiredFlows(db: Db): Promise<number> {
  return repo.deleteFlowsExpiredBefore(db, new Date());
}

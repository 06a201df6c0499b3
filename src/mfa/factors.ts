// What a person has enrolled, and the owner's "reset factors" for someone who lost them.
import * as repo from '../accounts/factors.repository.ts';
import { inTransaction } from '../db/transaction.ts';
import { endAllSessions } from '../accounts/accounts.service.ts';
import type { Db } from '../db/handle.ts';

export interface FactorSummary {
  /** A confirmed TOTP credential. */
  totp: boolean;
  passkeys: number;
  backup_codes_left: number;
}

export function factorSummary(db: Db, accountId: string): Promise<FactorSummary> {
  return repo.factorSummary(db, accountId);
}

/**
 * Remove every TOTP credential, passkey and backup code of the person and end all their
 * sessions (docs/architecture.md, "Sessions and refresh tokens": a factor reset ends sessions and revokes refresh tokens),
 * in one transaction. The person re-enrolls through a 'reset' invitation.
 */
export async function resetFactors(db: Db, accountId: string): Promise<{ totp: number; passkeys: number; backup_codes: number }> {
  return inTransaction(db, async (trx) => {
    const totp = await repo.deleteAllTotp(trx, accountId);
    const passkeys = await repo.deletePasskeys(trx, accountId);
    const backup_codes = await repo.deleteBackupCodes(trx, accountId);
    await endAllSessions(trx, accountId, 'factor_reset');
    return { totp, passkeys, backup_codes };
  });
}

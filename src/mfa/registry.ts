// The second factors of this instance, built once in src/app.ts (see src/mfa/strategy.ts).
import type { Sealer } from '../crypto/seal.ts';
import { backupCodeStrategy } from './backup-codes.strategy.ts';
import { factorSummary, type FactorSummary } from './factors.ts';
import { passkeyStrategy } from './passkey.strategy.ts';
import { isCodeFactor, type CodeFactor, type SecondFactor } from './strategy.ts';
import type { Db } from '../db/handle.ts';
import { totpStrategy } from './totp.strategy.ts';
import type { RelyingParty } from './webauthn.ts';

export function secondFactors(deps: { sealer: Sealer; rp: RelyingParty; backupCodeKey: Buffer }) {
  const totp = totpStrategy(deps.sealer);
  const backupCodes = backupCodeStrategy(deps.backupCodeKey);
  const passkeys = passkeyStrategy(deps.rp);
  /** In the order the sign-in page offers them: the first enrolled code factor is asked for. */
  const all: readonly SecondFactor[] = [totp, backupCodes, passkeys];
  const codeFactors: readonly CodeFactor[] = all.filter(isCodeFactor);
  return {
    totp,
    backupCodes,
    passkeys,
    all,
    codeFactors,
    /** What the person has enrolled: the one factor-summary query. */
    summary: (db: Db, accountId: string): Promise<FactorSummary> => factorSummary(db, accountId),
    /** Has the person a second factor to be asked for after the password? */
    hasAny: (s: FactorSummary): boolean => all.some((f) => f.describe(s).enrolled),
  };
}

export type SecondFactors = ReturnType<typeof secondFactors>;

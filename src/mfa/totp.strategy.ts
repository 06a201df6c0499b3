// TOTP as a second-factor strategy (src/mfa/strategy.ts): RFC 6238 codes from an authenticator app.
import * as repo from '../accounts/factors.repository.ts';
import type { Sealer } from '../crypto/seal.ts';
import type { CodeFactor } from './strategy.ts';
import type { Db } from '../db/handle.ts';
import {
  adoptTotpSeed,
  checkCodeForSeed,
  confirmTotp,
  describePendingTotp,
  describeTotpSeed,
  newTotpEnrollment,
  newTotpSeed,
  verifyTotp,
} from './totp.ts';

/** A seed chosen during an invitation's enrollment is sealed to that invitation. */
export const pendingTotpSealContext = (invitationId: string) => `enrollment_totp:${invitationId}`;

export function totpStrategy(sealer: Sealer) {
  const pendingContext = pendingTotpSealContext;
  return {
    id: 'totp',
    label: 'Authenticator app',
    method: 'totp',
    amr: ['otp'],
    kind: 'code',
    path: 'totp',
    describe: (s) => ({ enrolled: s.totp, count: s.totp ? 1 : 0 }),
    remove: (db: Db, accountId: string) => repo.deleteAllTotp(db, accountId),
    async verify(db: Db, accountId: string, code: unknown) {
      const r = await verifyTotp(db, sealer, accountId, code);
      if (r.ok) return r;
      const message =
        r.reason === 'replayed'
          ? 'This code was already used. Wait for the next code from your app.'
          : 'That code is not right. Check your authenticator app and try again.';
      return { ...r, message };
    },
    /** Self-service: a new unconfirmed credential, shown until confirmed with a code. */
    start: (db: Db, accountId: string, email: string) => newTotpEnrollment(db, sealer, accountId, email),
    confirm: (db: Db, accountId: string, id: string, code: unknown) => confirmTotp(db, sealer, accountId, id, code),
    pending: (db: Db, accountId: string, id: string, email: string) => describePendingTotp(db, sealer, accountId, id, email),
    /** Enrollment from an invitation: the seed waits, sealed, in the enrollment row until the account exists. */
    newSeed: newTotpSeed,
    showSeed: describeTotpSeed,
    checkSeed: (seed: Uint8Array, code: unknown) => checkCodeForSeed(seed, code),
    sealSeed: (seed: Buffer, invitationId: string) => sealer.seal(seed, pendingContext(invitationId)),
    openSeed: (sealed: string, invitationId: string) => sealer.open(sealed, pendingContext(invitationId)),
    adoptSeed: (db: Db, accountId: string, seed: Uint8Array, step: number) => adoptTotpSeed(db, sealer, accountId, seed, step),
  } satisfies CodeFactor & Record<string, unknown>;
}

export type TotpStrategy = ReturnType<typeof totpStrategy>;

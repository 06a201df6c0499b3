// Passkeys as a second-factor strategy (src/mfa/strategy.ts): WebAuthn ceremonies, JSON steps
// driven by static/passkey.js. A passkey also signs in on its own (usernameless).
import type { SecondFactor } from './strategy.ts';
import type { Db } from '../db/handle.ts';
import {
  authenticationOptions,
  checkRegistration,
  listPasskeys,
  registrationOptions,
  removePasskey,
  saveCredential,
  verifyAuthentication,
  verifyRegistration,
  type RelyingParty,
  type VerifiedCredential,
} from './webauthn.ts';
import * as repo from '../accounts/factors.repository.ts';

export function passkeyStrategy(rp: RelyingParty) {
  return {
    id: 'passkey',
    label: 'Passkeys',
    method: 'passkey',
    /** RFC 8176: `hwk` for a key bound to one device, `swk` for a synced one; `user` for user verification. */
    amr: ['hwk', 'swk', 'user'],
    describe: (s) => ({ enrolled: s.passkeys > 0, count: s.passkeys }),
    async remove(db: Db, accountId: string, credentialId?: string) {
      if (credentialId === undefined) return repo.deletePasskeys(db, accountId);
      return (await removePasskey(db, accountId, credentialId)) ? 1 : 0;
    },
    list: (db: Db, accountId: string) => listPasskeys(db, accountId),
    registrationOptions: (db: Db, scope: string, account: { id: string; email: string }) => registrationOptions(db, rp, scope, account),
    register: (db: Db, scope: string, accountId: string, response: unknown, name: string) =>
      verifyRegistration(db, rp, scope, accountId, response, name),
    /** Enrollment: check the answer before the transaction that creates the account, save inside it. */
    check: (db: Db, scope: string, accountId: string, response: unknown) => checkRegistration(db, rp, scope, accountId, response),
    save: (db: Db, accountId: string, credential: VerifiedCredential, name: string) => saveCredential(db, accountId, credential, name),
    authenticationOptions: (db: Db, scope: string, accountId: string | null) => authenticationOptions(db, rp, scope, accountId),
    authenticate: (db: Db, scope: string, response: unknown) => verifyAuthentication(db, rp, scope, response),
  } satisfies SecondFactor & Record<string, unknown>;
}

export type PasskeyStrategy = ReturnType<typeof passkeyStrategy>;

// /account as a domain flow: a person's own password, second factors (through the strategies
// of src/mfa/registry.ts) and sessions. The HTTP side (sign-in session, CSRF, freshness, audit,
// pages) is src/self-service/routes.ts.
import { confirmsCurrentPassword, findAccount, setPassword, type Account } from '../accounts/accounts.service.ts';
import { isGatehouseError } from '../errors.ts';
import type { SecondFactors } from '../mfa/registry.ts';
import { endSession, listSessions } from './sessions.ts';
import type { Db } from '../db/handle.ts';

export function selfService(db: Db, factors: SecondFactors) {
  return {
    factors,

    /** The person behind a sign-in session, if still active. */
    async activeAccount(accountId: string): Promise<Account | null> {
      const account = await findAccount(db, accountId).catch(() => null);
      return account && account.status === 'active' ? account : null;
    },

    /** Everything the account page shows, as plain data. */
    async overview(accountId: string, currentSessionUid: string) {
      const [f, passkeys, sessions, account] = await Promise.all([
        factors.summary(db, accountId),
        factors.passkeys.list(db, accountId),
        listSessions(db, accountId, currentSessionUid),
        findAccount(db, accountId),
      ]);
      return {
        hasPassword: !!account?.has_password,
        totp: factors.totp.describe(f).enrolled,
        passkeys,
        backupCodesLeft: factors.backupCodes.describe(f).count,
        sessions,
      };
    },

    /** A new password (the current one first, if there is one); the person's other sessions end. */
    async changePassword(
      accountId: string,
      current: unknown,
      password: unknown,
      keepSessionId: string,
    ): Promise<{ ok: true } | { ok: false; error: string }> {
      if (!(await confirmsCurrentPassword(db, accountId, current))) return { ok: false, error: 'The current password is not right.' };
      try {
        await setPassword(db, accountId, String(password ?? ''), { exceptSessionId: keepSessionId });
      } catch (err) {
        if (!isGatehouseError(err)) throw err;
        return { ok: false, error: err.message };
      }
      return { ok: true };
    },

    startTotp: (account: Account) => factors.totp.start(db, account.id, account.email),

    /** Confirm the app with a code; on a wrong code, the pending setup to show again (null if it is gone). */
    async confirmTotp(account: Account, id: string, code: unknown) {
      if (await factors.totp.confirm(db, account.id, id, code)) return { ok: true } as const;
      return { ok: false, pending: await factors.totp.pending(db, account.id, id, account.email) } as const;
    },

    regenerateBackupCodes: (accountId: string) => factors.backupCodes.regenerate(db, accountId),

    /**
     * Remove a passkey. Removing the last second factor is refused: the person could no longer
     * sign in safely (or at all, without a password).
     */
    async removePasskey(account: Account, id: string): Promise<'removed' | 'last' | 'missing'> {
      const f = await factors.summary(db, account.id);
      if (factors.passkeys.describe(f).count <= 1 && (!factors.totp.describe(f).enrolled || !account.has_password)) return 'last';
      return (await factors.passkeys.remove(db, account.id, id)) === 1 ? 'removed' : 'missing';
    },

    passkeyOptions: (account: Account) =>
      factors.passkeys.registrationOptions(db, `account:${account.id}`, { id: account.id, email: account.email }),
    registerPasskey: (account: Account, response: unknown, name: string) =>
      factors.passkeys.register(db, `account:${account.id}`, account.id, response, name),

    endSession: (accountId: string, uid: string) => endSession(db, accountId, uid),
  };
}

export type SelfService = ReturnType<typeof selfService>;

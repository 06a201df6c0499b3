// Enrollment from an invitation link (/enroll/:token), the state machine behind
// src/enroll/routes.ts. The choices made along the way (email, password, a TOTP seed) live in an
// `enrollment` row; the account is created only by the last step, in one transaction with the
// invitation's single use, the factor and the backup codes, so nothing is left half-made.
//
// States: no row -> password chosen (or skipped for a passkey) -> factor confirmed (done).
// A factor reset keeps the account (and its password, if it has one): it starts at the factor.
import { GatehouseError, isGatehouseError } from '../errors.ts';
import type { SecondFactors } from '../mfa/registry.ts';
import { findAccountByEmail, updateAccount } from './accounts.repository.ts';
import { inTransaction } from '../db/transaction.ts';
import { findAccount, getAccount, newAccountId, type Account } from './accounts.service.ts';
import { normalizeEmail } from './email.ts';
import * as repo from './enrollment.repository.ts';
import { FIRST_OWNER_EMAIL, consumeInvitation, enrollAccount, findValidInvitation, type Invitation } from './invitations.ts';
import { checkNewPassword, hashPassword } from './password.ts';
import type { Db } from '../db/handle.ts';

const ENROLLMENT_TTL_SECONDS = 3600;

/** What the factor page shows: the TOTP seed to scan (kept across reloads), or "set a password first". */
export type FactorStep = { ok: true; secretBase32: string; otpauthUrl: string; qrSvg: string } | { ok: false };

/** The password page again, with why and the email as typed. */
export interface PasswordRetry {
  error: string;
  email: string;
}

export interface Enrolled {
  account: Account;
  codes: string[];
  factor: string;
  withPassword: boolean;
}

/**
 * The last step of a factor reset: use the invitation up and keep the account, with the new
 * password if the person chose one (a passkey-only person may add one here).
 */
async function resetAccount(trx: Db, token: unknown, passwordHash: string | null) {
  const inv = await consumeInvitation(trx, token);
  if (inv.purpose !== 'reset' || !inv.account_id) throw new GatehouseError('VALIDATION', 'This link does not reset an account.');
  if (passwordHash) await updateAccount(trx, inv.account_id, { password_hash: passwordHash, password_changed_at: new Date() });
  return getAccount(trx, inv.account_id);
}

export function enrollmentService(db: Db, factors: SecondFactors) {
  const current = (inv: Invitation) => repo.findLiveEnrollment(db, inv.id, new Date());

  /** A reset keeps the account (and its password, if it has one); only the factors are new. */
  const accountHasPassword = async (inv: Invitation) =>
    inv.purpose === 'reset' && inv.account_id ? !!(await findAccount(db, inv.account_id))?.has_password : false;

  async function save(inv: Invitation, changes: { email?: string; password_hash?: string | null; totp_seed_sealed?: string | null }) {
    const existing = await current(inv);
    const row = {
      account_id: existing?.account_id ?? inv.account_id ?? newAccountId(),
      email: changes.email ?? existing?.email ?? inv.email,
      password_hash: changes.password_hash !== undefined ? changes.password_hash : (existing?.password_hash ?? null),
      totp_seed_sealed: changes.totp_seed_sealed !== undefined ? changes.totp_seed_sealed : (existing?.totp_seed_sealed ?? null),
      expires_at: new Date(Date.now() + ENROLLMENT_TTL_SECONDS * 1000),
    };
    await repo.upsertEnrollment(db, inv.id, row);
    return row;
  }

  /** The last step: account, factor and backup codes in one transaction with the invitation's use. */
  async function complete(inv: Invitation, token: unknown, addFactor: (trx: Db, accountId: string) => Promise<string>): Promise<Enrolled> {
    const row = await current(inv);
    if (!row) throw new GatehouseError('VALIDATION', 'This enrollment has expired. Open the invitation link again.');
    return inTransaction(db, async (trx) => {
      const account =
        inv.purpose === 'reset'
          ? await resetAccount(trx, token, row.password_hash)
          : await enrollAccount(trx, token, { passwordHash: row.password_hash, email: row.email, accountId: row.account_id });
      const factor = await addFactor(trx, account.id);
      const codes = await factors.backupCodes.regenerate(trx, account.id);
      await repo.deleteEnrollment(trx, inv.id);
      return { account, codes, factor, withPassword: row.password_hash !== null };
    });
  }

  return {
    /** The invitation behind a link, if it can still be used (a reset must name its account). */
    async invitation(token: unknown): Promise<Invitation | null> {
      const inv = await findValidInvitation(db, token);
      return inv && !(inv.purpose === 'reset' && !inv.account_id) ? inv : null;
    },

    /** Where the link starts: at the factor for a reset that keeps its password, else at the password (email prefilled). */
    async start(inv: Invitation): Promise<{ skipPassword: true } | { skipPassword: false; email: string }> {
      if (await accountHasPassword(inv)) return { skipPassword: true };
      return { skipPassword: false, email: (await current(inv))?.email ?? inv.email };
    },

    /** The password step (and the email, for the first owner's invitation, which carries none). */
    async choosePassword(
      inv: Invitation,
      body: { email?: unknown; password?: unknown },
    ): Promise<{ ok: true } | ({ ok: false; status: number } & PasswordRetry)> {
      let email = inv.email;
      try {
        if (inv.email === FIRST_OWNER_EMAIL) email = normalizeEmail(body.email);
        checkNewPassword(body.password, [email]);
      } catch (err) {
        if (!isGatehouseError(err)) throw err;
        return { ok: false, error: err.message, email: typeof body.email === 'string' ? body.email.slice(0, 254) : inv.email, status: 400 };
      }
      if (inv.email === FIRST_OWNER_EMAIL && (await findAccountByEmail(db, email))) {
        return { ok: false, error: `An account for ${email} already exists.`, email, status: 409 };
      }
      await save(inv, { email, password_hash: await hashPassword(body.password as string) });
      return { ok: true };
    },

    /** The factor step: a TOTP seed to show, chosen once and kept (the person may already have scanned it). */
    async factorStep(inv: Invitation): Promise<FactorStep> {
      const row = (await current(inv)) ?? ((await accountHasPassword(inv)) ? await save(inv, {}) : undefined);
      if (!row || (row.password_hash === null && inv.email === FIRST_OWNER_EMAIL)) return { ok: false };
      const totp = factors.totp;
      let seed: Buffer;
      if (row.totp_seed_sealed) seed = totp.openSeed(row.totp_seed_sealed, inv.id);
      else {
        seed = (await totp.newSeed(row.email)).seed;
        await save(inv, { totp_seed_sealed: totp.sealSeed(seed, inv.id) });
      }
      return { ok: true, ...(await totp.showSeed(seed, row.email)) };
    },

    /** Confirm the shown seed with a code and finish; or say why the factor page is shown again. */
    async confirmTotp(inv: Invitation, token: unknown, code: unknown): Promise<({ ok: true } & Enrolled) | { ok: false; error: string }> {
      const row = await current(inv);
      if (!row?.totp_seed_sealed || (row.password_hash === null && !(await accountHasPassword(inv))))
        return { ok: false, error: 'Start again: set a password first.' };
      const totp = factors.totp;
      const seed = totp.openSeed(row.totp_seed_sealed, inv.id);
      const step = await totp.checkSeed(seed, code);
      if (step === null)
        return { ok: false, error: 'That code is not right. Check the time on your device and enter the code your app shows now.' };
      const done = await complete(inv, token, async (trx, accountId) => {
        await totp.adoptSeed(trx, accountId, seed, step);
        return totp.id;
      });
      return { ok: true, ...done };
    },

    /** Start a passkey registration; with no password step yet, the person enrolls with the passkey alone. */
    async passkeyOptions(inv: Invitation) {
      if (inv.email === FIRST_OWNER_EMAIL && !(await current(inv)))
        throw new GatehouseError('VALIDATION', 'Enter your email and a password first.');
      const row = (await current(inv)) ?? (await save(inv, { password_hash: null }));
      return factors.passkeys.registrationOptions(db, `enroll:${inv.id}`, { id: row.account_id, email: row.email });
    },

    /** Finish with a passkey: its answer is checked (and its challenge spent) before the transaction that creates the account. */
    async registerPasskey(inv: Invitation, token: unknown, response: unknown, name: string): Promise<Enrolled> {
      const row = await current(inv);
      if (!row) throw new GatehouseError('VALIDATION', 'This enrollment has expired. Open the invitation link again.');
      const passkeys = factors.passkeys;
      const credential = await passkeys.check(db, `enroll:${inv.id}`, row.account_id, response);
      return complete(inv, token, async (trx, accountId) => {
        await passkeys.save(trx, accountId, credential, name);
        return passkeys.id;
      });
    },
  };
}

export type EnrollmentService = ReturnType<typeof enrollmentService>;

// Enrollment from an invitation or recovery link (/enroll/:token), the state machine behind
// src/enroll/routes.ts. The choices made along the way (email, password, a TOTP seed, the proof a
// recovery link asks for) live in an `enrollment` row; the account is created or changed only by
// the last step, in one transaction with the link's single use, so nothing is left half-made.
//
// 'enroll', 'reenroll': password (or a passkey alone) -> second factor -> backup codes.
// 'reset' (factor reset): current password proven -> new second factor -> backup codes. No new password.
// 'password_reset': a second factor proven (code, backup code or passkey) -> new password. No new factor.
// src/accounts/recovery.ts says what each recovery link revokes when it is made.
import { GatehouseError, isGatehouseError } from '../errors.ts';
import type { SecondFactors } from '../mfa/registry.ts';
import { findAccountByEmail, updateAccount } from './accounts.repository.ts';
import { inTransaction } from '../db/transaction.ts';
import { endAllSessions, findAccount, getAccount, newAccountId, type Account } from './accounts.service.ts';
import { normalizeEmail } from './email.ts';
import * as repo from './enrollment.repository.ts';
import {
  FIRST_OWNER_EMAIL,
  INVITATION_INVALID_MESSAGE,
  addProofAttempt,
  consumeInvitation,
  enrollAccount,
  expireInvitation,
  findValidInvitation,
  type Invitation,
} from './invitations.ts';
import { checkNewPassword, hashPassword, verifyPassword } from './password.ts';
import { MAX_PROOF_ATTEMPTS } from './recovery.ts';
import type { Db } from '../db/handle.ts';

const ENROLLMENT_TTL_SECONDS = 3600;

/** What the factor page shows: the TOTP seed to scan (kept across reloads), or "start at the first step". */
export type FactorStep = { ok: true; secretBase32: string; otpauthUrl: string; qrSvg: string } | { ok: false };

/** The first page of a link. */
export type Start =
  /** 'enroll', 'reenroll': choose a password, or a passkey alone. */
  | { page: 'password'; email: string }
  /** 'reset' before the proof: the current password. */
  | { page: 'prove-password'; email: string }
  /** 'password_reset' before the proof: a second factor the person has. */
  | { page: 'prove-factor'; email: string; totp: boolean; backupCodes: boolean; passkey: boolean }
  /** 'password_reset' after the proof. */
  | { page: 'new-password'; email: string }
  /** 'reset' after the proof. */
  | { page: 'factor' };

/** The password page again, with why and the email as typed. */
export interface PasswordRetry {
  error: string;
  email: string;
}

export type Proof = { ok: true } | { ok: false; error: string; spent: boolean };

export interface Enrolled {
  account: Account;
  codes: string[];
  factor: string;
  withPassword: boolean;
}

const WRONG_LINK = (what: string) => new GatehouseError('VALIDATION', `This link does not ${what}.`, { reason: 'wrong_link' });
const NOT_PROVEN = () => new GatehouseError('VALIDATION', 'Prove who you are first: start again from the link.', { reason: 'not_proven' });

export function enrollmentService(db: Db, factors: SecondFactors) {
  const current = (inv: Invitation) => repo.findLiveEnrollment(db, inv.id, new Date());
  const proven = async (inv: Invitation) => !!(await current(inv))?.proven_at;
  const person = async (inv: Invitation) => {
    const a = inv.account_id ? await findAccount(db, inv.account_id) : null;
    if (!a || a.status !== 'active') throw new GatehouseError('NOT_FOUND', INVITATION_INVALID_MESSAGE, { reason: 'invitation_invalid' });
    return a;
  };

  async function save(inv: Invitation, changes: { email?: string; password_hash?: string | null; totp_seed_sealed?: string | null }) {
    const existing = await current(inv);
    const row = {
      account_id: existing?.account_id ?? inv.account_id ?? newAccountId(),
      email: changes.email ?? existing?.email ?? inv.email,
      password_hash: changes.password_hash !== undefined ? changes.password_hash : (existing?.password_hash ?? null),
      totp_seed_sealed: changes.totp_seed_sealed !== undefined ? changes.totp_seed_sealed : (existing?.totp_seed_sealed ?? null),
      // A proof lasts as long as the live enrollment row: an expired row is not brought back proven.
      proven_at: existing?.proven_at ?? null,
      expires_at: new Date(Date.now() + ENROLLMENT_TTL_SECONDS * 1000),
    };
    await repo.upsertEnrollment(db, inv.id, row);
    return row;
  }

  /**
   * A recovery link's proof: the attempt is counted on the link BEFORE it is checked, so parallel
   * guesses cannot all pass one earlier check; after MAX_PROOF_ATTEMPTS the link dies.
   */
  async function prove(inv: Invitation, check: () => Promise<boolean>): Promise<Proof> {
    await save(inv, {});
    const attempts = await addProofAttempt(db, inv.id);
    const dead = {
      ok: false,
      error: 'Too many wrong attempts: this link no longer works. Ask an owner for a new one.',
      spent: true,
    } as const;
    if (attempts === null || attempts > MAX_PROOF_ATTEMPTS) {
      if (attempts !== null) await expireInvitation(db, inv.id);
      return dead;
    }
    if (await check()) {
      await repo.markProven(db, inv.id, new Date());
      return { ok: true };
    }
    if (attempts >= MAX_PROOF_ATTEMPTS) {
      await expireInvitation(db, inv.id);
      return dead;
    }
    return { ok: false, error: 'That is not right. Try again.', spent: false };
  }

  /** The factor step may start: an enrollment with its first step done, or a factor reset whose password was proven. */
  async function mayAddFactor(inv: Invitation): Promise<boolean> {
    const row = await current(inv);
    if (inv.purpose === 'password_reset' || !row) return false;
    if (inv.purpose === 'reset') return !!row.proven_at;
    return !(row.password_hash === null && inv.email === FIRST_OWNER_EMAIL);
  }

  /**
   * The last step of a link that ends with a new factor: the account (created, or the existing
   * one with its old factors removed and sessions ended), the factor and new backup codes, in one
   * transaction with the link's single use.
   */
  async function complete(inv: Invitation, token: unknown, addFactor: (trx: Db, accountId: string) => Promise<string>): Promise<Enrolled> {
    const row = await current(inv);
    if (!row) throw new GatehouseError('VALIDATION', 'This enrollment has expired. Open the link again.');
    if (inv.purpose === 'reset' && !row.proven_at) throw NOT_PROVEN();
    return inTransaction(db, async (trx) => {
      let account: Account;
      if (inv.purpose === 'enroll') {
        account = await enrollAccount(trx, token, { passwordHash: row.password_hash, email: row.email, accountId: row.account_id });
      } else {
        const used = await consumeInvitation(trx, token);
        if (used.id !== inv.id || !used.account_id || used.purpose === 'password_reset') throw WRONG_LINK('add a second factor');
        for (const f of factors.all) await f.remove(trx, used.account_id);
        // A factor reset never touches the password; a re-enrollment sets the one just chosen (or none: a passkey alone).
        if (used.purpose === 'reenroll')
          await updateAccount(trx, used.account_id, { password_hash: row.password_hash, password_changed_at: new Date() });
        await endAllSessions(trx, used.account_id);
        account = await getAccount(trx, used.account_id);
        if (account.status !== 'active') throw new GatehouseError('CONFLICT', 'This account is disabled.');
      }
      const factor = await addFactor(trx, account.id);
      const codes = await factors.backupCodes.regenerate(trx, account.id);
      await repo.deleteEnrollment(trx, inv.id);
      return { account, codes, factor, withPassword: inv.purpose === 'reset' ? account.has_password : row.password_hash !== null };
    });
  }

  return {
    /** The link, if it can still be used (a recovery link must name its account). */
    async invitation(token: unknown): Promise<Invitation | null> {
      const inv = await findValidInvitation(db, token);
      return inv && !(inv.purpose !== 'enroll' && !inv.account_id) ? inv : null;
    },

    async start(inv: Invitation): Promise<Start> {
      if (inv.purpose === 'reset') return (await proven(inv)) ? { page: 'factor' } : { page: 'prove-password', email: inv.email };
      if (inv.purpose === 'password_reset') {
        if (await proven(inv)) return { page: 'new-password', email: inv.email };
        const s = await factors.summary(db, (await person(inv)).id);
        return { page: 'prove-factor', email: inv.email, totp: s.totp, backupCodes: s.backup_codes_left > 0, passkey: s.passkeys > 0 };
      }
      return { page: 'password', email: (await current(inv))?.email ?? inv.email };
    },

    /** A factor reset: the person's current password, before anything else. Never sets one. */
    async provePassword(inv: Invitation, password: unknown): Promise<Proof> {
      if (inv.purpose !== 'reset') throw WRONG_LINK('ask for your current password');
      const account = await person(inv);
      const hash = (await findAccountByEmail(db, account.email))?.password_hash ?? null;
      return prove(inv, () => verifyPassword(hash, password));
    },

    /** A password reset: an authenticator code or a backup code of the person. */
    async proveCode(inv: Invitation, code: unknown): Promise<Proof> {
      if (inv.purpose !== 'password_reset') throw WRONG_LINK('ask for a second factor');
      const account = await person(inv);
      const typed = typeof code === 'string' ? code.replace(/\s+/g, '') : '';
      const factor = /^\d+$/.test(typed) ? factors.totp : factors.backupCodes;
      return prove(inv, async () => (await factor.verify(db, account.id, typed)).ok);
    },

    /** A password reset with a passkey: options for this person's passkeys only. */
    async provePasskeyOptions(inv: Invitation) {
      if (inv.purpose !== 'password_reset') throw WRONG_LINK('ask for a passkey');
      return factors.passkeys.authenticationOptions(db, `recovery:${inv.id}`, (await person(inv)).id);
    },

    async provePasskey(inv: Invitation, response: unknown): Promise<Proof> {
      if (inv.purpose !== 'password_reset') throw WRONG_LINK('ask for a passkey');
      const account = await person(inv);
      return prove(inv, async () => {
        try {
          return (await factors.passkeys.authenticate(db, `recovery:${inv.id}`, response)).accountId === account.id;
        } catch (err) {
          if (isGatehouseError(err)) return false;
          throw err;
        }
      });
    },

    /**
     * The password step: an enrollment's first step (and the email, for the first owner's
     * invitation, which carries none), or a password reset's last. A factor-reset link never takes one.
     */
    async choosePassword(
      inv: Invitation,
      token: unknown,
      body: { email?: unknown; password?: unknown },
    ): Promise<{ ok: true; done: Account | null } | ({ ok: false; status: number } & PasswordRetry)> {
      if (inv.purpose === 'reset') throw WRONG_LINK('change your password; it sets up a new second factor after your current password');
      if (inv.purpose === 'password_reset' && !(await proven(inv))) throw NOT_PROVEN();
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
      const hash = await hashPassword(body.password as string);
      if (inv.purpose !== 'password_reset') {
        await save(inv, { email, password_hash: hash });
        return { ok: true, done: null };
      }
      const done = await inTransaction(db, async (trx) => {
        const used = await consumeInvitation(trx, token);
        if (used.id !== inv.id || used.purpose !== 'password_reset' || !used.account_id) throw WRONG_LINK('change a password');
        await updateAccount(trx, used.account_id, { password_hash: hash, password_changed_at: new Date() });
        await endAllSessions(trx, used.account_id);
        await repo.deleteEnrollment(trx, inv.id);
        return getAccount(trx, used.account_id);
      });
      return { ok: true, done };
    },

    /** The factor step: a TOTP seed to show, chosen once and kept (the person may already have scanned it). */
    async factorStep(inv: Invitation): Promise<FactorStep> {
      if (!(await mayAddFactor(inv))) return { ok: false };
      const row = (await current(inv))!;
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
      if (!row?.totp_seed_sealed || !(await mayAddFactor(inv))) return { ok: false, error: 'Start again from the first step.' };
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

    /**
     * Start a passkey registration. In an enrollment with no password step yet, the person
     * enrolls with the passkey alone; a factor reset registers one only after the password.
     */
    async passkeyOptions(inv: Invitation) {
      if (inv.purpose === 'password_reset') throw WRONG_LINK('add a passkey');
      if (inv.purpose === 'reset' && !(await proven(inv))) throw NOT_PROVEN();
      if (inv.email === FIRST_OWNER_EMAIL && !(await current(inv)))
        throw new GatehouseError('VALIDATION', 'Enter your email and a password first.');
      const row = (await current(inv)) ?? (await save(inv, { password_hash: null }));
      return factors.passkeys.registrationOptions(db, `enroll:${inv.id}`, { id: row.account_id, email: row.email });
    },

    /** Finish with a passkey: its answer is checked (and its challenge spent) before the transaction that uses the link. */
    async registerPasskey(inv: Invitation, token: unknown, response: unknown, name: string): Promise<Enrolled> {
      if (inv.purpose === 'password_reset') throw WRONG_LINK('add a passkey');
      const row = await current(inv);
      if (!row) throw new GatehouseError('VALIDATION', 'This enrollment has expired. Open the link again.');
      if (inv.purpose === 'reset' && !row.proven_at) throw NOT_PROVEN();
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

// People: created from invitations (src/accounts/invitations.ts), managed by owners (admin UI,
// CLI). A change that alters what a person's tokens say (role, permissions, status, password,
// sessions) bumps the `accounts` change version in the same transaction, so every instance
// drops what it cached; claims are recomputed at the next refresh (docs/architecture.md, "Sessions and refresh tokens").
import crypto from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Role } from '../authz/model.ts';
import { bumpVersion } from '../db/change-feed.ts';
import type { AccountRow, AccountStatus, Database } from '../db/schema.ts';
import { GatehouseError } from '../errors.ts';
import { inTransaction } from '../db/transaction.ts';
import * as repo from './accounts.repository.ts';
import { normalizeEmail } from './email.ts';
import { checkNewPassword, hashPassword, passwordNeedsRehash, verifyPassword } from './password.ts';
import { parseOrThrow, permissionsSchema, roleSchema } from './validation.ts';
import type { Db } from '../db/handle.ts';
import { enqueueAccountSessions, type LogoutReason } from '../oidc/backchannel-logout.repository.ts';

export interface Account {
  id: string;
  email: string;
  role: Role;
  permissions: string[];
  status: AccountStatus;
  has_password: boolean;
  password_changed_at: Date | null;
  /** Sessions and refresh tokens from before this instant are refused. */
  sessions_valid_after: Date | null;
  last_sign_in_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface AccountListItem extends Account {
  factors: { totp: boolean; passkeys: number; backup_codes_left: number };
}

const date = (v: Date | string | null): Date | null => (v === null ? null : new Date(v));

export function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    email: row.email,
    role: row.role as Role,
    permissions: row.permissions,
    status: row.status,
    has_password: row.password_hash !== null,
    password_changed_at: date(row.password_changed_at),
    sessions_valid_after: date(row.sessions_valid_after),
    last_sign_in_at: date(row.last_sign_in_at),
    created_at: new Date(row.created_at),
    updated_at: new Date(row.updated_at),
  };
}

/** `usr_` + 20 base64url characters (120 random bits): unguessable, and safe in a URL or a `sub`. */
export function newAccountId(): string {
  return `usr_${crypto.randomBytes(15).toString('base64url')}`;
}

export interface CreateAccountInput {
  email: string;
  role: string;
  permissions?: string[];
  /** From hashPassword(); null for a person who enrolls with a passkey alone. */
  passwordHash: string | null;
  /** An id chosen before the account exists (a passkey registered at enrollment carries it as its user handle). */
  id?: string;
}

export async function createAccount(db: Db, input: CreateAccountInput): Promise<Account> {
  const email = normalizeEmail(input.email);
  const role = parseOrThrow(roleSchema, input.role, 'role');
  const permissions = parseOrThrow(permissionsSchema, input.permissions ?? [], 'permissions');
  return inTransaction(db, async (trx) => {
    if (await repo.findAccountByEmail(trx, email)) throw emailTaken(email);
    let row: AccountRow;
    try {
      row = await repo.insertAccount(trx, {
        id: input.id && /^usr_[A-Za-z0-9_-]{20}$/.test(input.id) ? input.id : newAccountId(),
        email,
        role,
        permissions,
        password_hash: input.passwordHash,
      });
    } catch (err) {
      // A concurrent enrollment for the same email won the unique index.
      if ((err as { code?: string }).code === '23505') throw emailTaken(email);
      throw err;
    }
    await bumpVersion(trx, 'accounts');
    return toAccount(row);
  });
}

function emailTaken(email: string): GatehouseError {
  return new GatehouseError('CONFLICT', `An account for ${email} already exists.`, { field: 'email' });
}

export async function findAccount(db: Db, id: string): Promise<Account | null> {
  if (typeof id !== 'string' || id.length > 64) return null;
  const row = await repo.findAccount(db, id);
  return row ? toAccount(row) : null;
}

export async function getAccount(db: Db, id: string): Promise<Account> {
  const account = await findAccount(db, id);
  if (!account) throw notFound(id);
  return account;
}

/** Throws VALIDATION for something that is not an email, returns null for an unknown one. */
export async function findAccountByEmail(db: Db, email: string): Promise<Account | null> {
  const row = await repo.findAccountByEmail(db, normalizeEmail(email));
  return row ? toAccount(row) : null;
}

export async function listAccounts(db: Db): Promise<AccountListItem[]> {
  return (await repo.listAccounts(db)).map((r) => ({
    ...toAccount(r),
    factors: { totp: r.totp_confirmed, passkeys: r.passkeys, backup_codes_left: r.backup_codes_left },
  }));
}

export function countOwners(db: Db): Promise<number> {
  return repo.countActiveOwners(db);
}

function notFound(id: string): GatehouseError {
  return new GatehouseError('NOT_FOUND', `No account with id ${JSON.stringify(String(id).slice(0, 64))}.`);
}

/**
 * Lock the active owners, then the account, and refuse a change that would leave no active
 * owner: nobody could then manage users, and recovery would need database access.
 */
async function lockForOwnerChange(
  trx: Transaction<Database>,
  id: string,
  losesOwnership: (row: AccountRow) => boolean,
): Promise<AccountRow> {
  const owners = await repo.lockActiveOwners(trx);
  const row = await repo.lockAccount(trx, id);
  if (!row) throw notFound(id);
  if (row.role === 'owner' && row.status === 'active' && losesOwnership(row) && owners.length <= 1) {
    throw new GatehouseError('LAST_OWNER', 'This is the last active owner. Make someone else an owner first.');
  }
  return row;
}

export async function setRole(db: Db, id: string, role: string): Promise<Account> {
  const next = parseOrThrow(roleSchema, role, 'role');
  return inTransaction(db, async (trx) => {
    await lockForOwnerChange(trx, id, () => next !== 'owner');
    await repo.updateAccount(trx, id, { role: next });
    await bumpVersion(trx, 'accounts');
    return toAccount((await repo.findAccount(trx, id))!);
  });
}

export async function setPermissions(db: Db, id: string, permissions: string[]): Promise<Account> {
  const list = parseOrThrow(permissionsSchema, permissions, 'permissions');
  return inTransaction(db, async (trx) => {
    if (!(await repo.updateAccount(trx, id, { permissions: JSON.stringify(list) }))) throw notFound(id);
    await bumpVersion(trx, 'accounts');
    return toAccount((await repo.findAccount(trx, id))!);
  });
}

/** Disabling also ends every session and revokes every refresh token at once. */
export async function disableAccount(db: Db, id: string): Promise<Account> {
  return inTransaction(db, async (trx) => {
    await lockForOwnerChange(trx, id, () => true);
    await repo.updateAccount(trx, id, { status: 'disabled', sessions_valid_after: new Date() });
    await enqueueAccountSessions(trx, id, 'disabled');
    await repo.deleteOidcRows(trx, id);
    await bumpVersion(trx, 'accounts');
    return toAccount((await repo.findAccount(trx, id))!);
  });
}

export async function enableAccount(db: Db, id: string): Promise<Account> {
  return inTransaction(db, async (trx) => {
    if (!(await repo.updateAccount(trx, id, { status: 'active' }))) throw notFound(id);
    await bumpVersion(trx, 'accounts');
    return toAccount((await repo.findAccount(trx, id))!);
  });
}

/**
 * A new password, checked for strength against the person's email. Ends the person's other
 * sessions and revokes their refresh tokens (docs/architecture.md, "Sessions and refresh tokens"); `exceptSessionId` is the
 * oidc-provider Session the change was made from. sessions_valid_after moves to now for
 * every session, so the caller re-stamps the kept one after a fresh authentication.
 */
export async function setPassword(db: Db, id: string, password: string, opts: { exceptSessionId?: string } = {}): Promise<Account> {
  const current = await getAccount(db, id);
  checkNewPassword(password, [current.email]);
  const hash = await hashPassword(password);
  return inTransaction(db, async (trx) => {
    const now = new Date();
    if (!(await repo.updateAccount(trx, id, { password_hash: hash, password_changed_at: now, sessions_valid_after: now })))
      throw notFound(id);
    await enqueueAccountSessions(trx, id, 'password_change', { exceptSessionId: opts.exceptSessionId ?? null });
    await repo.deleteOidcRows(trx, id, opts.exceptSessionId ?? null);
    await bumpVersion(trx, 'accounts');
    return toAccount((await repo.findAccount(trx, id))!);
  });
}

/** A change to a password the person has needs that password: true when `current` is it, or when there is none. */
export async function confirmsCurrentPassword(db: Db, id: string, current: unknown): Promise<boolean> {
  const row = await repo.findAccount(db, id);
  if (!row) throw notFound(id);
  return row.password_hash === null || verifyPassword(row.password_hash, current);
}

export async function recordSignIn(db: Db, id: string, at: Date = new Date()): Promise<void> {
  await repo.recordSignIn(db, id, at);
}

/**
 * "Sign out everywhere": every session and refresh token of the person, now. Each client that
 * took part in an ended session hears it by back-channel logout (src/oidc/backchannel-logout.ts);
 * `reason` is only for its logs.
 */
export async function endAllSessions(db: Db, id: string, reason: LogoutReason = 'sessions_ended'): Promise<{ deleted: number }> {
  return inTransaction(db, async (trx) => {
    if (!(await repo.updateAccount(trx, id, { sessions_valid_after: new Date() }))) throw notFound(id);
    await enqueueAccountSessions(trx, id, reason);
    const deleted = await repo.deleteOidcRows(trx, id);
    await bumpVersion(trx, 'accounts');
    return { deleted };
  });
}

export type PasswordSignIn =
  | { ok: true; account: Account }
  /** `accountId`: the existing account the email named, for the audit's target (never shown to the person). */
  | { ok: false; reason: 'invalid' | 'disabled'; accountId: string | null };

/**
 * The password step of sign-in. An unknown email, a malformed one, a passkey-only account and
 * a wrong password all cost one argon2 verification and give 'invalid'. 'disabled' is told
 * only to someone who knew the password. The second factor comes after this.
 */
export async function authenticatePassword(db: Db, email: unknown, password: unknown): Promise<PasswordSignIn> {
  let row: AccountRow | undefined;
  try {
    row = await repo.findAccountByEmail(db, normalizeEmail(email));
  } catch (err) {
    if (!(err instanceof GatehouseError)) throw err;
  }
  const ok = await verifyPassword(row?.password_hash ?? null, password);
  if (!ok || !row) return { ok: false, reason: 'invalid', accountId: row?.id ?? null };
  if (row.status !== 'active') return { ok: false, reason: 'disabled', accountId: row.id };
  if (passwordNeedsRehash(row.password_hash!)) {
    // Parameters were raised since this hash was made: upgrade it while the password is at hand.
    await repo.updateAccount(db, row.id, { password_hash: await hashPassword(password as string) });
  }
  return { ok: true, account: toAccount(row) };
}

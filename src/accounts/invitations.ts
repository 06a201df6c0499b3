// Invitations: the only way in (docs/architecture.md, "Accounts and sign-in"). The link carries 256 random
// bits; the database keeps only their SHA-256, so a database leak yields no usable link, and a
// lookup by hash gives nothing to time (a fast hash is sound for a secret nobody chose, as for
// client secrets in src/clients/secret.ts).
import crypto from 'node:crypto';
import { z } from 'zod';
import type { Role } from '../authz/model.ts';
import type { InvitationPurposeColumn, InvitationRow } from '../db/schema.ts';
import { GatehouseError } from '../errors.ts';
import { type Account, countOwners, createAccount } from './accounts.service.ts';
import * as accountsRepo from './accounts.repository.ts';
import { normalizeEmail } from './email.ts';
import * as repo from './invitations.repository.ts';
import { parseOrThrow, permissionsSchema, roleSchema } from './validation.ts';
import type { Db } from '../db/handle.ts';
import { inTransaction } from '../db/transaction.ts';

export const DEFAULT_INVITATION_TTL_SECONDS = 72 * 3600;
const MIN_TTL_SECONDS = 60;
const MAX_TTL_SECONDS = 30 * 24 * 3600;

export const INVITATION_INVALID_MESSAGE = 'This invitation link has expired or was already used. Ask an owner for a new one.';

/**
 * The first owner's invitation has an empty email: it is printed once on the operator's console
 * at first start, whoever holds it is the operator, and they type their email at enrollment.
 * Putting a made-up address there instead would either be wrong or need a flag to ask.
 */
export const FIRST_OWNER_EMAIL = '';

/**
 * 'enroll' creates an account. The recovery links (src/accounts/recovery.ts) act on an existing
 * one: 'reset' a new second factor after the current password, 'password_reset' a new password
 * after a second factor, 'reenroll' both, as a new invitation would.
 */
export type InvitationPurpose = InvitationPurposeColumn;
export const RECOVERY_PURPOSES = ['reset', 'password_reset', 'reenroll'] as const satisfies readonly InvitationPurpose[];
export const isRecovery = (purpose: InvitationPurpose): boolean => purpose !== 'enroll';

export interface Invitation {
  id: string;
  /** Empty for the first owner's invitation: the person gives it at enrollment. */
  email: string;
  role: Role;
  permissions: string[];
  purpose: InvitationPurpose;
  account_id: string | null;
  created_by: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

function toInvitation(row: InvitationRow): Invitation {
  return {
    id: row.id,
    email: row.email,
    role: row.role as Role,
    permissions: row.permissions,
    purpose: row.purpose,
    account_id: row.account_id,
    created_by: row.created_by,
    created_at: new Date(row.created_at),
    expires_at: new Date(row.expires_at),
    used_at: row.used_at === null ? null : new Date(row.used_at),
  };
}

export function hashInvitationToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('base64url');
}

const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/; // 32 bytes, base64url, no padding

export interface CreateInvitationInput {
  email: string;
  /** Required for 'enroll'; a recovery link keeps the account's own role. */
  role?: string;
  permissions?: string[];
  createdBy?: string | null;
  ttlSeconds?: number;
  purpose?: InvitationPurpose;
}

export interface CreatedInvitation {
  id: string;
  /** Shown once, in the link; only its hash is stored. */
  token: string;
  email: string;
  role: Role;
  expires_at: Date;
}

const ttlSchema = z.number().int().min(MIN_TTL_SECONDS, `at least ${MIN_TTL_SECONDS} seconds`).max(MAX_TTL_SECONDS, 'at most 30 days');

/**
 * A new invitation. 'enroll' is refused for an email that already has an account; a recovery
 * link (src/accounts/recovery.ts) needs one. A newer invitation for the same email invalidates
 * the older unused ones, of any kind: the latest link sent is the only one that works.
 */
export async function createInvitation(db: Db, input: CreateInvitationInput): Promise<CreatedInvitation> {
  const email = normalizeEmail(input.email);
  const purpose = parseOrThrow(z.enum(['enroll', ...RECOVERY_PURPOSES]), input.purpose ?? 'enroll', 'purpose');
  const ttl = parseOrThrow(ttlSchema, input.ttlSeconds ?? DEFAULT_INVITATION_TTL_SECONDS, 'ttlSeconds');
  const requestedRole = purpose === 'enroll' ? parseOrThrow(roleSchema, input.role, 'role') : null;
  const permissions = parseOrThrow(permissionsSchema, input.permissions ?? [], 'permissions');
  return inTransaction(db, async (trx) => {
    await repo.lockEmail(trx, email);
    const existing = await accountsRepo.findAccountByEmail(trx, email);
    if (purpose === 'enroll' && existing) {
      throw new GatehouseError(
        'CONFLICT',
        existing.status === 'active'
          ? `${email} already has an account.`
          : `${email} already has a disabled account: enable it instead of inviting again.`,
        { field: 'email' },
      );
    }
    if (purpose !== 'enroll' && !existing) throw new GatehouseError('NOT_FOUND', `No account for ${email}.`, { field: 'email' });
    const role = requestedRole ?? (existing!.role as Role);
    return issue(trx, {
      email,
      role,
      permissions: purpose !== 'enroll' ? existing!.permissions : permissions,
      purpose,
      accountId: existing?.id ?? null,
      createdBy: input.createdBy ?? null,
      ttl,
    });
  });
}

async function issue(
  trx: Db,
  v: {
    email: string;
    role: Role;
    permissions: string[];
    purpose: InvitationPurpose;
    accountId: string | null;
    createdBy: string | null;
    ttl: number;
  },
): Promise<CreatedInvitation> {
  const now = new Date();
  await repo.invalidateUnused(trx, v.email, now);
  const token = crypto.randomBytes(32).toString('base64url');
  const row = await repo.insertInvitation(trx, {
    id: `inv_${crypto.randomBytes(15).toString('base64url')}`,
    token_hash: hashInvitationToken(token),
    email: v.email,
    role: v.role,
    permissions: v.permissions,
    purpose: v.purpose,
    account_id: v.accountId,
    created_by: v.createdBy,
    expires_at: new Date(now.getTime() + v.ttl * 1000),
  });
  return { id: row.id, token, email: row.email, role: row.role as Role, expires_at: new Date(row.expires_at) };
}

/**
 * The first owner's link, or null when an active owner exists. Each call (each start on a
 * database without an owner) issues a fresh link and invalidates the previous one: only a
 * hash is stored, so an older link could not be printed again anyway, and the link in the
 * latest log is the one that works.
 */
export async function firstOwnerInvitation(db: Db, ttlSeconds = DEFAULT_INVITATION_TTL_SECONDS): Promise<CreatedInvitation | null> {
  const ttl = parseOrThrow(ttlSchema, ttlSeconds, 'ttlSeconds');
  return inTransaction(db, async (trx) => {
    await repo.lockEmail(trx, FIRST_OWNER_EMAIL);
    if ((await countOwners(trx)) > 0) return null;
    return issue(trx, {
      email: FIRST_OWNER_EMAIL,
      role: 'owner',
      permissions: [],
      purpose: 'enroll',
      accountId: null,
      createdBy: null,
      ttl,
    });
  });
}

/** An unused, unexpired invitation for this link, or null. Does not use it up. */
export async function findValidInvitation(db: Db, token: unknown): Promise<Invitation | null> {
  if (typeof token !== 'string' || !TOKEN_RE.test(token)) return null;
  const row = await repo.findValidByHash(db, hashInvitationToken(token), new Date());
  return row ? toInvitation(row) : null;
}

/** A recovery link whose proof failed too often stops working at once. */
export async function expireInvitation(db: Db, id: string): Promise<void> {
  await repo.expireNow(db, id, new Date());
}

/** Count a proof attempt on a usable link before checking the proof; null when the link is dead. */
export function addProofAttempt(db: Db, id: string): Promise<number | null> {
  return repo.addProofAttempt(db, id, new Date());
}

/**
 * Use the invitation up, atomically: one UPDATE that matches only an unused, unexpired row.
 * Run it in the transaction that acts on the invitation, so a failure later on gives it back.
 */
export async function consumeInvitation(trx: Db, token: unknown): Promise<Invitation> {
  const row =
    typeof token === 'string' && TOKEN_RE.test(token) ? await repo.consumeByHash(trx, hashInvitationToken(token), new Date()) : undefined;
  if (!row) throw new GatehouseError('NOT_FOUND', INVITATION_INVALID_MESSAGE, { reason: 'invitation_invalid' });
  return toInvitation(row);
}

export interface EnrollInput {
  /** From hashPassword() after checkNewPassword(); null to enroll with a passkey alone. */
  passwordHash: string | null;
  /** Only for the first owner's invitation, which carries no email. */
  email?: string;
  /** The account id, when chosen before enrollment ends (see CreateAccountInput.id). */
  accountId?: string;
}

/**
 * Create the account an 'enroll' invitation promises. The consume and the insert share one
 * transaction: if the account cannot be created, the invitation stays usable, and a used or
 * expired invitation creates nothing.
 */
export async function enrollAccount(db: Db, token: unknown, input: EnrollInput): Promise<Account> {
  return inTransaction(db, async (trx) => {
    const invitation = await consumeInvitation(trx, token);
    if (invitation.purpose !== 'enroll')
      throw new GatehouseError('VALIDATION', 'This link recovers an existing account; it cannot create one.');
    let email = invitation.email;
    if (email === FIRST_OWNER_EMAIL) {
      // An owner enrolled some other way (the CLI) since the link was printed: it is void.
      if ((await countOwners(trx)) > 0) throw new GatehouseError('CONFLICT', 'An owner already exists. Ask them for an invitation.');
      email = normalizeEmail(input.email);
    }
    const account = await createAccount(trx, {
      email,
      role: invitation.role,
      permissions: invitation.permissions,
      passwordHash: input.passwordHash,
      ...(input.accountId ? { id: input.accountId } : {}),
    });
    await repo.setAccount(trx, invitation.id, account.id);
    return account;
  });
}

// Recovery links (issue 7 point 3): three kinds, each doing only what it says, each single use,
// short-lived and audited with its own actions. The link is an invitation row (only its SHA-256
// is stored, src/accounts/invitations.ts); its pages are the enrollment's (src/accounts/enrollment.ts).
//
// - factors  ('reset'):          the person proves their CURRENT password, then enrolls a new
//                                second factor and gets new backup codes. Never sets a password.
// - password ('password_reset'): the person proves a second factor (authenticator code, backup
//                                code or passkey), then sets a new password. Never adds a factor.
// - all      ('reenroll'):       both lost: a new invitation for the same account, role and permissions.
//
// When sessions end: what was lost is revoked when the link is made. A factor reset or a
// re-enrollment removes the lost factors (and, for 'all', the password) and ends every session
// and refresh token at once: a lost phone or laptop may be in someone else's hands, and the
// person cannot sign in without them anyway. A password reset changes nothing until it is used
// (as Keycloak's "reset credentials"): a forgotten password is not a compromised one, and a link
// made by mistake or by someone else then costs the person nothing. Every kind ends all sessions
// and refresh tokens again when it completes (OWASP Forgot Password Cheat Sheet).
import { z } from 'zod';
import type { AuditAction } from '../audit/actions.ts';
import type { Db } from '../db/handle.ts';
import { inTransaction } from '../db/transaction.ts';
import { GatehouseError } from '../errors.ts';
import { factorSummary, resetFactors } from '../mfa/factors.ts';
import * as accountsRepo from './accounts.repository.ts';
import { type Account, findAccountByEmail, getAccount } from './accounts.service.ts';
import { type CreatedInvitation, type InvitationPurpose, createInvitation } from './invitations.ts';
import { parseOrThrow } from './validation.ts';

export const RECOVERY_WHATS = ['factors', 'password', 'all'] as const;
export type RecoveryWhat = (typeof RECOVERY_WHATS)[number];

/** OWASP Forgot Password Cheat Sheet: recovery tokens expire "after an appropriate period". */
export const DEFAULT_RECOVERY_TTL_SECONDS = 24 * 3600;

/** How often the holder of a link may try its proof before the link dies (the password or code behind it is then safe from guessing through it). */
export const MAX_PROOF_ATTEMPTS = 5;

interface Kind {
  purpose: InvitationPurpose;
  /** The link was made. */
  created: AuditAction;
  /** The link was used (success), or its proof failed (failure). */
  completed: AuditAction;
  label: string;
}

export const RECOVERY: Record<RecoveryWhat, Kind> = {
  factors: { purpose: 'reset', created: 'factor.reset', completed: 'factor.reset_complete', label: 'Factor reset' },
  password: { purpose: 'password_reset', created: 'password.reset', completed: 'password.reset_complete', label: 'Password reset' },
  all: { purpose: 'reenroll', created: 'account.reenroll', completed: 'account.reenroll_complete', label: 'Re-enrollment' },
};

export function recoveryWhat(purpose: InvitationPurpose): RecoveryWhat | null {
  return RECOVERY_WHATS.find((w) => RECOVERY[w].purpose === purpose) ?? null;
}

export interface RecoveryLink {
  what: RecoveryWhat;
  account: Account;
  invitation: CreatedInvitation;
  /** What making the link revoked at once. */
  revoked: { totp: number; passkeys: number; backup_codes: number; password: boolean; sessions: boolean };
}

export interface CreateRecoveryInput {
  accountId?: string;
  email?: string;
  what: unknown;
  createdBy: string | null;
  ttlSeconds?: number;
}

export async function createRecoveryLink(db: Db, input: CreateRecoveryInput): Promise<RecoveryLink> {
  const what = parseOrThrow(z.enum(RECOVERY_WHATS), input.what, 'what');
  return inTransaction(db, async (trx) => {
    const found = input.accountId ? await getAccount(trx, input.accountId) : await findAccountByEmail(trx, String(input.email ?? ''));
    if (!found) throw new GatehouseError('NOT_FOUND', `No account for ${input.email}.`, { field: 'email' });
    const account = found;
    if (account.status !== 'active')
      throw new GatehouseError('CONFLICT', `${account.email} is disabled: enable the account before sending a recovery link.`);
    if (what === 'factors' && !account.has_password)
      throw new GatehouseError('VALIDATION', `${account.email} has no password to prove: send a re-enrollment link instead.`);
    if (what === 'password') {
      const s = await factorSummary(trx, account.id);
      if (!s.totp && s.passkeys === 0 && s.backup_codes_left === 0)
        throw new GatehouseError('VALIDATION', `${account.email} has no second factor to prove: send a re-enrollment link instead.`);
    }
    const invitation = await createInvitation(trx, {
      email: account.email,
      purpose: RECOVERY[what].purpose,
      createdBy: input.createdBy,
      ttlSeconds: input.ttlSeconds ?? DEFAULT_RECOVERY_TTL_SECONDS,
    });
    const revoked = { totp: 0, passkeys: 0, backup_codes: 0, password: false, sessions: false };
    if (what !== 'password') {
      Object.assign(revoked, await resetFactors(trx, account.id), { sessions: true });
      if (what === 'all' && account.has_password) {
        await accountsRepo.updateAccount(trx, account.id, { password_hash: null, password_changed_at: new Date() });
        revoked.password = true;
      }
    }
    return { what, account, invitation, revoked };
  });
}

/** The audit details of a new link: never the token. */
export function recoveryDetails(link: RecoveryLink): Record<string, unknown> {
  return {
    email: link.account.email,
    what: link.what,
    invitation_id: link.invitation.id,
    expires_at: link.invitation.expires_at.toISOString(),
    authenticator_apps: link.revoked.totp,
    passkeys: link.revoked.passkeys,
    backup_set: link.revoked.backup_codes,
    first_factor_removed: link.revoked.password,
    sessions_ended: link.revoked.sessions,
  };
}

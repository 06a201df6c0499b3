import { disableAccount, enableAccount, findAccountByEmail, listAccounts, setRole } from '../accounts/accounts.service.ts';
import { createInvitation } from '../accounts/invitations.ts';
import { RECOVERY, createRecoveryLink, recoveryDetails } from '../accounts/recovery.ts';
import { GatehouseError } from '../errors.ts';
import type { Command } from './command.ts';
import type { CliContext } from './context.ts';

async function byEmail(ctx: CliContext, email: unknown) {
  if (typeof email !== 'string' || !email) throw new GatehouseError('VALIDATION', '--email is required');
  const account = await findAccountByEmail(ctx.db.kysely, email);
  if (!account) throw new GatehouseError('NOT_FOUND', `no account for ${email}`);
  return account;
}

export const userCommands: Command[] = [
  {
    name: 'users invite',
    summary: 'invite a person: prints a single-use enrollment link',
    options: {
      email: { type: 'string' },
      role: { type: 'string' },
      permission: { type: 'string', multiple: true },
      'ttl-hours': { type: 'string' },
    },
    async run(ctx, v) {
      if (!v.email) throw new GatehouseError('VALIDATION', '--email is required');
      if (!v.role) throw new GatehouseError('VALIDATION', '--role is required (viewer, operator, admin, owner, auditor)');
      const ttlHours = v['ttl-hours'] === undefined ? 72 : Number(v['ttl-hours']);
      if (!Number.isFinite(ttlHours) || ttlHours <= 0) throw new GatehouseError('VALIDATION', '--ttl-hours must be a positive number');
      const inv = await createInvitation(ctx.db.kysely, {
        email: v.email,
        role: v.role,
        permissions: v.permission ?? [],
        createdBy: 'cli',
        ttlSeconds: Math.round(ttlHours * 3600),
      });
      const url = `${ctx.config.issuer}/enroll/${inv.token}`;
      const out = { email: inv.email, role: inv.role, url, expires_at: inv.expires_at.toISOString() };
      await ctx.audit({
        action: 'invitation.create',
        outcome: 'success',
        actor: 'cli',
        target: inv.email,
        details: { role: inv.role, permissions: v.permission ?? [], expires_at: out.expires_at },
      });
      return { json: out, text: `Invitation for ${out.email} (${out.role}), valid until ${out.expires_at}, single use:\n${url}` };
    },
  },
  {
    name: 'users reset',
    summary: 'a recovery link, printed once: --what factors (proves the password), password (proves a second factor) or all (enroll again)',
    options: { email: { type: 'string' }, what: { type: 'string' }, 'ttl-hours': { type: 'string' } },
    async run(ctx, v) {
      if (!v.email) throw new GatehouseError('VALIDATION', '--email is required');
      if (!v.what) throw new GatehouseError('VALIDATION', '--what is required (factors, password or all)');
      const ttlHours = v['ttl-hours'] === undefined ? 24 : Number(v['ttl-hours']);
      if (!Number.isFinite(ttlHours) || ttlHours <= 0) throw new GatehouseError('VALIDATION', '--ttl-hours must be a positive number');
      const made = await createRecoveryLink(ctx.db.kysely, {
        email: v.email,
        what: v.what,
        createdBy: 'cli',
        ttlSeconds: Math.round(ttlHours * 3600),
      });
      const kind = RECOVERY[made.what];
      const url = `${ctx.config.issuer}/enroll/${made.invitation.token}`;
      const out = { email: made.account.email, what: made.what, url, expires_at: made.invitation.expires_at.toISOString() };
      await ctx.audit({ action: kind.created, outcome: 'success', actor: 'cli', target: made.account.id, details: recoveryDetails(made) });
      await ctx.audit({
        action: 'invitation.create',
        outcome: 'success',
        actor: 'cli',
        target: made.account.email,
        details: { invitation_id: made.invitation.id, role: made.invitation.role, purpose: kind.purpose, expires_at: out.expires_at },
      });
      const revoked = made.what === 'password' ? 'Nothing changed yet' : 'Their factors were removed and their sessions ended';
      return { json: out, text: `${kind.label} link for ${out.email}, valid until ${out.expires_at}, single use. ${revoked}.\n${url}` };
    },
  },
  {
    name: 'users list',
    summary: 'list people, their roles, factors and last sign-in',
    options: {},
    async run(ctx) {
      const users = (await listAccounts(ctx.db.kysely)).map((a) => ({
        id: a.id,
        email: a.email,
        role: a.role,
        permissions: a.permissions,
        status: a.status,
        factors: a.factors,
        last_sign_in_at: a.last_sign_in_at ? new Date(a.last_sign_in_at).toISOString() : null,
      }));
      const text = users.length
        ? users
            .map(
              (u) =>
                `${u.id}  ${u.email}  ${u.role}  ${u.status}  totp=${u.factors.totp ? 'yes' : 'no'} passkeys=${u.factors.passkeys} backup=${u.factors.backup_codes_left}  last sign-in ${u.last_sign_in_at ?? 'never'}`,
            )
            .join('\n')
        : 'no users';
      return { json: { users }, text };
    },
  },
  {
    name: 'users set-role',
    summary: "change a person's role (takes effect at their next token refresh)",
    options: { email: { type: 'string' }, role: { type: 'string' } },
    async run(ctx, v) {
      const before = await byEmail(ctx, v.email);
      const after = await setRole(ctx.db.kysely, before.id, v.role ?? '');
      await ctx.audit({
        action: 'user.role_change',
        outcome: 'success',
        actor: 'cli',
        target: after.id,
        details: { from: before.role, to: after.role },
      });
      return {
        json: { ok: true, id: after.id, email: after.email, role: after.role },
        text: `${after.email}: role ${before.role} → ${after.role}`,
      };
    },
  },
  {
    name: 'users disable',
    summary: 'disable a person: their sessions end and refreshes fail at once',
    options: { email: { type: 'string' } },
    async run(ctx, v) {
      const a = await disableAccount(ctx.db.kysely, (await byEmail(ctx, v.email)).id);
      await ctx.audit({ action: 'user.disable', outcome: 'success', actor: 'cli', target: a.id, details: {} });
      return { json: { ok: true, id: a.id, email: a.email, status: a.status }, text: `${a.email} disabled` };
    },
  },
  {
    name: 'users enable',
    summary: 're-enable a disabled person',
    options: { email: { type: 'string' } },
    async run(ctx, v) {
      const a = await enableAccount(ctx.db.kysely, (await byEmail(ctx, v.email)).id);
      await ctx.audit({ action: 'user.enable', outcome: 'success', actor: 'cli', target: a.id, details: {} });
      return { json: { ok: true, id: a.id, email: a.email, status: a.status }, text: `${a.email} enabled` };
    },
  },
];

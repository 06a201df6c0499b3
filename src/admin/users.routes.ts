// People: list and search, invite, and one person's role, permissions, status, factors and
// sessions. Every change goes through guard.change (CSRF, owner, fresh sign-in) and
// guard.perform (the change and its audit event in one transaction).
import type Router from '@koa/router';
import type { Context } from 'koa';
import {
  disableAccount,
  enableAccount,
  endAllSessions,
  getAccount,
  listAccounts,
  setPermissions,
  setRole,
} from '../accounts/accounts.service.ts';
import { createInvitation } from '../accounts/invitations.ts';
import { RECOVERY, RECOVERY_WHATS, createRecoveryLink, recoveryDetails, type RecoveryWhat } from '../accounts/recovery.ts';
import type { AuditAction } from '../audit/actions.ts';
import type { GatehouseError } from '../errors.ts';
import { html } from '../http/html.ts';
import { factorSummary } from '../mfa/factors.ts';
import { invitePage, linkOncePage, recoveryIntro, userPage, usersPage } from '../../views/admin/users.ts';
import { withNotice, type AdminRequest, type Guard } from './guard.ts';
import { one, parsePermissions, splitList } from './input.ts';
import { noticeFor } from './notices.ts';
import { parseUserSearch, searchUsers } from './users.ts';
import type { Db } from '../db/handle.ts';

export interface UserRouteDeps {
  db: Db;
  guard: Guard;
  issuer: string;
}

const body = (ctx: Context) => (ctx.request.body ?? {}) as Record<string, unknown>;

export function userRoutes(router: Router, deps: UserRouteDeps): void {
  const { db, guard } = deps;
  const enrollUrl = (token: string) => `${deps.issuer}/enroll/${token}`;

  router.get('/admin/users', async (ctx) => {
    const r = await guard.page(ctx, 'manage');
    if (!r) return;
    const all = await listAccounts(db);
    const filter = parseUserSearch(ctx.query);
    guard.html(ctx, usersPage(r.frame, { users: searchUsers(all, filter), total: all.length, filter, notice: noticeFor(ctx.query.done) }));
  });

  router.get('/admin/users/invite', async (ctx) => {
    const r = await guard.page(ctx, 'manage');
    if (r) guard.html(ctx, invitePage(r.frame, {}));
  });

  router.post('/admin/users/invite', async (ctx) => {
    const b = body(ctx);
    const email = one(b.email, 320);
    const r = await guard.change(ctx, 'manage', { action: 'invitation.create', target: email, returnTo: '/admin/users/invite' });
    if (!r) return;
    const role = one(b.role, 32);
    const done = await guard.perform(
      ctx,
      r,
      { action: 'invitation.create', target: email },
      async (trx) => {
        const permissions = parsePermissions(b.permissions);
        const inv = await createInvitation(trx, { email, role, permissions, createdBy: r.account.id, purpose: 'enroll' });
        return {
          result: inv,
          target: inv.email,
          details: {
            invitation_id: inv.id,
            email: inv.email,
            role: inv.role,
            permissions,
            purpose: 'enroll',
            expires_at: inv.expires_at.toISOString(),
          },
        };
      },
      { transaction: true },
    );
    if (!done.ok)
      return guard.html(
        ctx,
        invitePage(r.frame, { email, role, permissions: splitList(b.permissions).join('\n'), error: done.error.message }),
        done.error.status,
      );
    const inv = done.result;
    guard.html(
      ctx,
      linkOncePage(r.frame, {
        title: 'Invitation created',
        intro: html`<p>An invitation for <strong>${inv.email}</strong> as <strong>${inv.role}</strong>.</p>`,
        url: enrollUrl(inv.token),
        expiresAt: inv.expires_at,
        back: '/admin/users',
      }),
    );
  });

  async function showUser(
    ctx: Context,
    r: AdminRequest,
    id: string,
    extra: { notice?: string | null; error?: string | null; permissionsText?: string } = {},
    status = 200,
  ) {
    const user = await getAccount(db, id);
    const factors = await factorSummary(db, user.id);
    guard.html(ctx, userPage(r.frame, { user, factors, self: user.id === r.account.id, ...extra }), status);
  }

  router.get('/admin/users/:id', async (ctx) => {
    const r = await guard.page(ctx, 'manage');
    if (r) await showUser(ctx, r, ctx.params.id!, { notice: noticeFor(ctx.query.done) });
  });

  /**
   * One change to one person: guard, do it with its event, then back to the person's page with
   * a notice (post/redirect/get), or the page again with the service's message.
   */
  function change(
    path: string,
    action: AuditAction,
    notice: string,
    work: (trx: Db, r: AdminRequest, id: string, ctx: Context) => Promise<Record<string, unknown>>,
    onError?: (ctx: Context, r: AdminRequest, id: string, err: GatehouseError) => Promise<void>,
  ) {
    router.post(`/admin/users/:id/${path}`, async (ctx) => {
      const id = ctx.params.id!.slice(0, 64);
      const page = `/admin/users/${encodeURIComponent(id)}`;
      const r = await guard.change(ctx, 'manage', { action, target: id, returnTo: page });
      if (!r) return;
      const done = await guard.perform(
        ctx,
        r,
        { action, target: id },
        async (trx) => ({ result: null, details: await work(trx, r, id, ctx) }),
        { transaction: true },
      );
      if (done.ok) {
        ctx.status = 303;
        return ctx.redirect(withNotice(page, notice));
      }
      if (done.error.code === 'NOT_FOUND') throw done.error;
      if (onError) return onError(ctx, r, id, done.error);
      await showUser(ctx, r, id, { error: done.error.message }, done.error.status);
    });
  }

  change('role', 'user.role_change', 'role', async (trx, _r, id, ctx) => {
    const before = await getAccount(trx, id);
    const after = await setRole(trx, id, one(body(ctx).role, 32));
    return { email: before.email, from: before.role, to: after.role };
  });

  change(
    'permissions',
    'user.permission_change',
    'permissions',
    async (trx, _r, id, ctx) => {
      const before = await getAccount(trx, id);
      const after = await setPermissions(trx, id, parsePermissions(body(ctx).permissions));
      return { email: before.email, from: before.permissions, to: after.permissions };
    },
    // Keep what was typed, so one bad line does not cost the rest.
    (ctx, r, id, err) =>
      showUser(ctx, r, id, { error: err.message, permissionsText: splitList(body(ctx).permissions).join('\n') }, err.status),
  );

  change('disable', 'user.disable', 'disabled', async (trx, _r, id) => {
    const a = await disableAccount(trx, id);
    return { email: a.email, sessions_ended: true };
  });

  change('enable', 'user.enable', 'enabled', async (trx, _r, id) => {
    const a = await enableAccount(trx, id);
    return { email: a.email };
  });

  change('end-sessions', 'session.end_all', 'sessions', async (trx, _r, id) => {
    const { deleted } = await endAllSessions(trx, id);
    return { deleted_records: deleted };
  });

  // Recovery links (src/accounts/recovery.ts): a factor reset, a password reset, a re-enrollment.
  // Each is shown once; what making it revokes at once is in its audit event.
  const RECOVERY_PATHS: Record<RecoveryWhat, string> = { factors: 'reset-factors', password: 'reset-password', all: 'reenroll' };
  for (const what of RECOVERY_WHATS) {
    const kind = RECOVERY[what];
    router.post(`/admin/users/:id/${RECOVERY_PATHS[what]}`, async (ctx) => {
      const id = ctx.params.id!.slice(0, 64);
      const page = `/admin/users/${encodeURIComponent(id)}`;
      const r = await guard.change(ctx, 'manage', { action: kind.created, target: id, returnTo: page });
      if (!r) return;
      const done = await guard.perform(
        ctx,
        r,
        { action: kind.created, target: id },
        async (trx) => {
          const made = await createRecoveryLink(trx, { accountId: id, what, createdBy: r.account.id });
          const details = recoveryDetails(made);
          await guard.record(
            ctx,
            r.account.id,
            {
              action: 'invitation.create',
              outcome: 'success',
              target: made.account.email,
              details: {
                invitation_id: made.invitation.id,
                email: made.account.email,
                role: made.invitation.role,
                purpose: kind.purpose,
                expires_at: details.expires_at,
              },
            },
            trx,
          );
          return { result: made, details };
        },
        { transaction: true },
      );
      if (!done.ok) {
        if (done.error.code === 'NOT_FOUND') throw done.error;
        return showUser(ctx, r, id, { error: done.error.message }, done.error.status);
      }
      const made = done.result;
      guard.html(
        ctx,
        linkOncePage(r.frame, {
          title: `${kind.label} link`,
          intro: recoveryIntro(made),
          url: enrollUrl(made.invitation.token),
          expiresAt: made.invitation.expires_at,
          back: page,
        }),
      );
    });
  }
}

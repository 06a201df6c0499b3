// Enrollment from an invitation link: /enroll/:token. HTTP only: the state machine is
// src/accounts/enrollment.ts; this file reads the invitation, calls one step, renders its page.
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { EnrollmentService, Enrolled } from '../accounts/enrollment.ts';
import { FIRST_OWNER_EMAIL, INVITATION_INVALID_MESSAGE, type Invitation } from '../accounts/invitations.ts';
import type { AuditSink } from '../audit/sink.ts';
import type { Csrf } from '../http/csrf.ts';
import { backupCodesPage, enrollFactorPage, enrollPasswordPage, invitationInvalidPage } from '../../views/enroll.ts';

export interface EnrollDeps {
  enrollment: EnrollmentService;
  csrf: Csrf;
  audit: AuditSink;
  /** Where a person goes once enrolled. */
  afterEnrollment: string;
}

export function enrollRoutes(router: Router, deps: EnrollDeps): void {
  const { enrollment } = deps;

  async function invitation(ctx: Context): Promise<Invitation | null> {
    ctx.set('cache-control', 'no-store');
    const inv = await enrollment.invitation(ctx.params.token);
    if (!inv) {
      ctx.status = 410;
      ctx.type = 'html';
      ctx.body = invitationInvalidPage(INVITATION_INVALID_MESSAGE);
      return null;
    }
    return inv;
  }

  const ctxFor = (ctx: Context) => ({ nonce: ctx.state.cspNonce as string, csrf: deps.csrf.token(ctx), token: ctx.params.token as string });

  function html(ctx: Context, body: string, status = 200) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = body;
  }

  function passwordPage(ctx: Context, inv: Invitation, extra: { error?: string; email?: string } = {}, status = 200) {
    html(
      ctx,
      enrollPasswordPage({
        ...ctxFor(ctx),
        email: extra.email ?? inv.email,
        askEmail: inv.email === FIRST_OWNER_EMAIL,
        role: inv.role,
        ...(extra.error ? { error: extra.error } : {}),
      }),
      status,
    );
  }

  async function factorPage(ctx: Context, inv: Invitation, error?: string, status = 200) {
    const step = await enrollment.factorStep(inv);
    if (!step.ok) return passwordPage(ctx, inv);
    const { ok: _, ...shown } = step;
    html(ctx, enrollFactorPage({ ...ctxFor(ctx), ...shown, ...(error ? { error } : {}) }), status);
  }

  async function audit(ctx: Context, inv: Invitation, done: Enrolled) {
    const base = {
      outcome: 'success' as const,
      actor: done.account.id,
      ip: ctx.ip,
      target: done.account.id,
      requestId: ctx.state.requestId,
    };
    await deps.audit({
      ...base,
      action: 'invitation.accept',
      details: { invitation_id: inv.id, role: done.account.role, purpose: inv.purpose },
    });
    await deps.audit({
      ...base,
      action: 'factor.enroll',
      details: { factor: done.factor, with_password: done.withPassword, backup_set_size: done.codes.length },
    });
  }

  router.get('/enroll/:token', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    const start = await enrollment.start(inv);
    if (start.skipPassword) {
      // A factor reset for a person who keeps their password: straight to the new factor.
      ctx.status = 303;
      return ctx.redirect(`/enroll/${ctx.params.token}/factor`);
    }
    passwordPage(ctx, inv, { email: start.email });
  });

  router.post('/enroll/:token/password', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    deps.csrf.verify(ctx, body._csrf);
    const r = await enrollment.choosePassword(inv, body);
    if (!r.ok) return passwordPage(ctx, inv, { error: r.error, email: r.email }, r.status);
    ctx.status = 303;
    ctx.redirect(`/enroll/${ctx.params.token}/factor`);
  });

  router.get('/enroll/:token/factor', async (ctx) => {
    const inv = await invitation(ctx);
    if (inv) await factorPage(ctx, inv);
  });

  router.post('/enroll/:token/totp', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    deps.csrf.verify(ctx, body._csrf);
    const r = await enrollment.confirmTotp(inv, ctx.params.token, body.code);
    if (!r.ok) return factorPage(ctx, inv, r.error, 400);
    await audit(ctx, inv, r);
    html(ctx, backupCodesPage({ nonce: ctx.state.cspNonce, codes: r.codes, next: deps.afterEnrollment }));
  });

  router.post('/enroll/:token/passkey/options', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    deps.csrf.verify(ctx, ctx.get('x-csrf-token'));
    ctx.body = await enrollment.passkeyOptions(inv);
  });

  router.post('/enroll/:token/passkey/verify', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    deps.csrf.verify(ctx, ctx.get('x-csrf-token'));
    const body = (ctx.request.body ?? {}) as { response?: unknown; name?: unknown };
    const name = typeof body.name === 'string' ? body.name.trim() : 'Passkey';
    const done = await enrollment.registerPasskey(inv, ctx.params.token, body.response, name);
    await audit(ctx, inv, done);
    ctx.body = { codes: done.codes, next: deps.afterEnrollment };
  });
}

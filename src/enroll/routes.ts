// Enrollment and recovery from a link: /enroll/:token. HTTP only: the state machine is
// src/accounts/enrollment.ts (what each kind of link allows: src/accounts/recovery.ts); this file
// reads the link, calls one step, audits it, renders its page.
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { EnrollmentService, Enrolled, Proof } from '../accounts/enrollment.ts';
import { FIRST_OWNER_EMAIL, INVITATION_INVALID_MESSAGE, type Invitation } from '../accounts/invitations.ts';
import { MAX_PROOF_ATTEMPTS, RECOVERY, recoveryWhat } from '../accounts/recovery.ts';
import type { AuditSink } from '../audit/sink.ts';
import { GatehouseError } from '../errors.ts';
import type { Csrf } from '../http/csrf.ts';
import {
  backupCodesPage,
  enrollFactorPage,
  enrollPasswordPage,
  invitationInvalidPage,
  passwordChangedPage,
  proveFactorPage,
  provePasswordPage,
} from '../../views/enroll.ts';

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
  const link = (ctx: Context, step = '') => `/enroll/${ctx.params.token}${step}`;

  function html(ctx: Context, body: string, status = 200) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = body;
  }

  /** The page a link is at now (its first page, its proof, or its password step), with an error if any. */
  async function startPage(ctx: Context, inv: Invitation, extra: { error?: string; email?: string } = {}, status = 200): Promise<void> {
    const start = await enrollment.start(inv);
    const error = extra.error ? { error: extra.error } : {};
    switch (start.page) {
      case 'factor':
        if (status === 200) {
          ctx.status = 303;
          return ctx.redirect(link(ctx, '/factor'));
        }
        return factorPage(ctx, inv, extra.error, status, false);
      case 'prove-password':
        return html(ctx, provePasswordPage({ ...ctxFor(ctx), email: start.email, ...error }), status);
      case 'prove-factor': {
        const { page: _, ...shown } = start;
        return html(ctx, proveFactorPage({ ...ctxFor(ctx), ...shown, ...error }), status);
      }
      case 'new-password':
        return html(
          ctx,
          enrollPasswordPage({ ...ctxFor(ctx), email: start.email, askEmail: false, role: inv.role, mode: 'reset', ...error }),
          status,
        );
      case 'password':
        return html(
          ctx,
          enrollPasswordPage({
            ...ctxFor(ctx),
            email: extra.email ?? start.email,
            askEmail: inv.email === FIRST_OWNER_EMAIL,
            role: inv.role,
            mode: inv.purpose === 'reenroll' ? 'reenroll' : 'enroll',
            ...error,
          }),
          status,
        );
    }
  }

  async function factorPage(ctx: Context, inv: Invitation, error?: string, status = 200, orStart = true): Promise<void> {
    const step = await enrollment.factorStep(inv);
    if (!step.ok && !orStart) return html(ctx, invitationInvalidPage(error ?? INVITATION_INVALID_MESSAGE), status);
    if (!step.ok) return startPage(ctx, inv, error ? { error } : {}, error ? status : 200);
    const { ok: _, ...shown } = step;
    html(ctx, enrollFactorPage({ ...ctxFor(ctx), ...shown, ...(error ? { error } : {}) }), status);
  }

  const base = (ctx: Context, accountId: string) => ({ actor: accountId, ip: ctx.ip, target: accountId, requestId: ctx.state.requestId });

  async function audit(ctx: Context, inv: Invitation, done: Enrolled) {
    const what = recoveryWhat(inv.purpose);
    await deps.audit({
      ...base(ctx, done.account.id),
      outcome: 'success',
      action: what ? RECOVERY[what].completed : 'invitation.accept',
      details: { invitation_id: inv.id, role: done.account.role, purpose: inv.purpose, sessions_ended: what !== null },
    });
    await deps.audit({
      ...base(ctx, done.account.id),
      outcome: 'success',
      action: 'factor.enroll',
      details: { factor: done.factor, with_password: done.withPassword, backup_set_size: done.codes.length },
    });
  }

  /** A failed proof on a recovery link is recorded against the account it was for. */
  async function auditProof(ctx: Context, inv: Invitation, method: string, r: Proof) {
    const what = recoveryWhat(inv.purpose);
    if (r.ok || !what || !inv.account_id) return;
    await deps.audit({
      ...base(ctx, 'anonymous'),
      target: inv.account_id,
      outcome: 'failure',
      action: RECOVERY[what].completed,
      details: {
        invitation_id: inv.id,
        purpose: inv.purpose,
        method,
        reason: r.spent ? 'link_spent' : 'wrong_proof',
        max_attempts: MAX_PROOF_ATTEMPTS,
      },
    });
  }

  /** A wrong step for this kind of link (a new password on a factor-reset link, …): nothing changes, the page says why. */
  async function refused(ctx: Context, inv: Invitation, err: unknown) {
    if (err instanceof GatehouseError && (err.details?.reason === 'wrong_link' || err.details?.reason === 'not_proven'))
      return startPage(ctx, inv, { error: err.message }, 400);
    throw err;
  }

  async function afterProof(ctx: Context, inv: Invitation, r: Proof) {
    await auditProof(ctx, inv, ctx.path.split('/').pop()!, r);
    if (r.ok) {
      ctx.status = 303;
      return ctx.redirect(link(ctx));
    }
    if (r.spent) return html(ctx, invitationInvalidPage(r.error), 410);
    return startPage(ctx, inv, { error: r.error }, 400);
  }

  router.get('/enroll/:token', async (ctx) => {
    const inv = await invitation(ctx);
    if (inv) await startPage(ctx, inv);
  });

  /** A recovery link's proof form (the current password, or a second-factor code). */
  function proofRoute(path: string, prove: (inv: Invitation, body: Record<string, unknown>) => Promise<Proof>) {
    router.post(`/enroll/:token/${path}`, async (ctx) => {
      const inv = await invitation(ctx);
      if (!inv) return;
      const body = (ctx.request.body ?? {}) as Record<string, unknown>;
      deps.csrf.verify(ctx, body._csrf);
      try {
        await afterProof(ctx, inv, await prove(inv, body));
      } catch (err) {
        await refused(ctx, inv, err);
      }
    });
  }
  proofRoute('prove-password', (inv, body) => enrollment.provePassword(inv, body.password));
  proofRoute('prove-code', (inv, body) => enrollment.proveCode(inv, body.code));

  router.post('/enroll/:token/prove-passkey/options', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    deps.csrf.verify(ctx, ctx.get('x-csrf-token'));
    ctx.body = await enrollment.provePasskeyOptions(inv);
  });

  router.post('/enroll/:token/prove-passkey/verify', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    deps.csrf.verify(ctx, ctx.get('x-csrf-token'));
    const r = await enrollment.provePasskey(inv, ((ctx.request.body ?? {}) as { response?: unknown }).response);
    await auditProof(ctx, inv, 'passkey', r);
    if (!r.ok) throw new GatehouseError('UNAUTHENTICATED', r.spent ? r.error : 'The passkey could not be verified.');
    ctx.body = { location: link(ctx) };
  });

  router.post('/enroll/:token/password', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    deps.csrf.verify(ctx, body._csrf);
    let r;
    try {
      r = await enrollment.choosePassword(inv, ctx.params.token, body);
    } catch (err) {
      return refused(ctx, inv, err);
    }
    if (!r.ok) return startPage(ctx, inv, { error: r.error, email: r.email }, r.status);
    if (r.done) {
      await deps.audit({
        ...base(ctx, r.done.id),
        outcome: 'success',
        action: RECOVERY.password.completed,
        details: { invitation_id: inv.id, purpose: inv.purpose, sessions_ended: true },
      });
      return html(ctx, passwordChangedPage({ nonce: ctx.state.cspNonce, next: deps.afterEnrollment }));
    }
    ctx.status = 303;
    ctx.redirect(link(ctx, '/factor'));
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
    let r;
    try {
      r = await enrollment.confirmTotp(inv, ctx.params.token, body.code);
    } catch (err) {
      return refused(ctx, inv, err);
    }
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

// /account: a person's own password, factors and sessions. It reads the person's Gatehouse
// sign-in session (oidc-provider's); signing in goes through the built-in first-party client
// `gatehouse-account`. Every change needs a sign-in younger than FRESH_AUTH_SECONDS (the
// "fresh second factor" in docs/architecture.md, "Sessions and refresh tokens"; a recent sign-in always included one), and every POST
// carries the CSRF token.
import crypto from 'node:crypto';
import type Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Account } from '../accounts/accounts.service.ts';
import type { AuditSink } from '../audit/sink.ts';
import type { AuditAction } from '../audit/actions.ts';
import { GatehouseError } from '../errors.ts';
import type { Csrf } from '../http/csrf.ts';
import { FRESH_AUTH_SECONDS } from '../oidc/lifetimes.ts';
import { accountPage, accountTotpPage } from '../../views/account.ts';
import { backupCodesPage } from '../../views/enroll.ts';
import { ACCOUNT_CLIENT_ID } from './account-client.ts';
import type { SelfService } from './self-service.ts';

export interface AccountDeps {
  selfService: SelfService;
  provider: () => Provider;
  issuer: string;
  csrf: Csrf;
  audit: AuditSink;
}

interface Me {
  account: Account;
  session: { jti: string; uid: string; authTime: number };
}

export function accountRoutes(router: Router, deps: AccountDeps): void {
  const { selfService: service } = deps;

  async function me(ctx: Context): Promise<Me | null> {
    ctx.set('cache-control', 'no-store');
    const session = (await deps.provider().Session.get(ctx as any)) as any;
    if (!session?.accountId) return null;
    const account = await service.activeAccount(session.accountId);
    if (!account) return null;
    return { account, session: { jti: session.jti, uid: session.uid, authTime: session.loginTs ?? 0 } };
  }

  function login(ctx: Context, maxAge?: number) {
    const params = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: `${deps.issuer}/account/callback`,
      // PKCE is required for every client; the code is never exchanged (the page reads the
      // sign-in session itself), so the verifier is not kept.
      code_challenge: crypto.createHash('sha256').update(crypto.randomBytes(32)).digest('base64url'),
      code_challenge_method: 'S256',
      state: crypto.randomBytes(16).toString('base64url'),
      ...(maxAge !== undefined ? { max_age: String(maxAge) } : {}),
    });
    ctx.redirect(`/auth?${params}`);
  }

  /** A change needs a fresh sign-in: otherwise send the person through one, then back here. */
  function fresh(ctx: Context, m: Me): boolean {
    if (Math.floor(Date.now() / 1000) - m.session.authTime <= FRESH_AUTH_SECONDS) return true;
    login(ctx, FRESH_AUTH_SECONDS);
    return false;
  }

  async function render(ctx: Context, m: Me, note: { message?: string; error?: string } = {}, status = 200) {
    const overview = await service.overview(m.account.id, m.session.uid);
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = accountPage({
      nonce: ctx.state.cspNonce,
      csrf: deps.csrf.token(ctx),
      email: m.account.email,
      role: m.account.role,
      ...overview,
      ...note,
    });
  }

  const audit = (ctx: Context, m: Me, action: AuditAction, details: Record<string, unknown>) =>
    deps.audit({
      action,
      outcome: 'success',
      actor: m.account.id,
      target: m.account.id,
      ip: ctx.ip,
      requestId: ctx.state.requestId,
      details,
    });

  /** Guard a POST: signed in, CSRF token, fresh sign-in. */
  async function change(ctx: Context, json = false): Promise<Me | null> {
    const m = await me(ctx);
    if (!m) {
      if (json) throw new GatehouseError('UNAUTHENTICATED', 'Sign in again.');
      login(ctx);
      return null;
    }
    deps.csrf.verify(ctx, json ? ctx.get('x-csrf-token') : (ctx.request.body as any)?._csrf);
    if (json && Math.floor(Date.now() / 1000) - m.session.authTime > FRESH_AUTH_SECONDS)
      throw new GatehouseError('UNAUTHENTICATED', 'Sign in again to change your factors.');
    if (!json && !fresh(ctx, m)) return null;
    return m;
  }

  router.get('/account', async (ctx) => {
    const m = await me(ctx);
    if (!m) return login(ctx);
    await render(ctx, m);
  });

  // The sign-in session exists once the person is back here; the code itself is not needed.
  router.get('/account/callback', (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.redirect('/account');
  });

  router.get('/account/login', (ctx) => login(ctx, ctx.query.max_age !== undefined ? FRESH_AUTH_SECONDS : undefined));

  router.post('/account/password', async (ctx) => {
    const m = await change(ctx);
    if (!m) return;
    const body = ctx.request.body as Record<string, unknown>;
    const r = await service.changePassword(m.account.id, body.current, body.password, m.session.jti);
    if (!r.ok) return render(ctx, m, { error: r.error }, 400);
    await audit(ctx, m, 'password.change', { other_sessions_ended: true });
    await render(ctx, m, { message: 'Password changed. Your other sessions were ended.' });
  });

  router.post('/account/totp', async (ctx) => {
    const m = await change(ctx);
    if (!m) return;
    const e = await service.startTotp(m.account);
    ctx.type = 'html';
    ctx.body = accountTotpPage({ nonce: ctx.state.cspNonce, csrf: deps.csrf.token(ctx), ...e });
  });

  router.post('/account/totp/confirm', async (ctx) => {
    const m = await change(ctx);
    if (!m) return;
    const body = ctx.request.body as Record<string, unknown>;
    const id = String(body.id ?? '');
    const r = await service.confirmTotp(m.account, id, body.code);
    if (r.ok) {
      await audit(ctx, m, 'factor.enroll', { type: service.factors.totp.method });
      return render(ctx, m, { message: 'Authenticator app set up.' });
    }
    const pending = r.pending;
    if (!pending) return render(ctx, m, { error: 'Start the authenticator setup again.' }, 400);
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = accountTotpPage({
      nonce: ctx.state.cspNonce,
      csrf: deps.csrf.token(ctx),
      ...pending,
      error: 'That code is not right. Enter the code your app shows now.',
    });
  });

  router.post('/account/backup-codes', async (ctx) => {
    const m = await change(ctx);
    if (!m) return;
    const codes = await service.regenerateBackupCodes(m.account.id);
    await audit(ctx, m, 'factor.regenerate', { type: 'backup_codes', set_size: codes.length });
    ctx.type = 'html';
    ctx.body = backupCodesPage({ nonce: ctx.state.cspNonce, codes, next: '/account' });
  });

  router.post('/account/passkeys/remove', async (ctx) => {
    const m = await change(ctx);
    if (!m) return;
    const id = String((ctx.request.body as any)?.id ?? '').slice(0, 1024);
    const r = await service.removePasskey(m.account, id);
    if (r === 'last') return render(ctx, m, { error: 'This is your last second factor: add another one before removing it.' }, 409);
    if (r === 'missing') return render(ctx, m, { error: 'No such passkey.' }, 404);
    await audit(ctx, m, 'factor.remove', { type: service.factors.passkeys.method });
    await render(ctx, m, { message: 'Passkey removed.' });
  });

  router.post('/account/passkeys/options', async (ctx) => {
    const m = await change(ctx, true);
    if (!m) return;
    ctx.body = await service.passkeyOptions(m.account);
  });

  router.post('/account/passkeys/verify', async (ctx) => {
    const m = await change(ctx, true);
    if (!m) return;
    const body = (ctx.request.body ?? {}) as { response?: unknown; name?: unknown };
    await service.registerPasskey(m.account, body.response, typeof body.name === 'string' ? body.name.trim() : 'Passkey');
    await audit(ctx, m, 'factor.enroll', { type: service.factors.passkeys.method });
    ctx.body = { location: '/account' };
  });

  router.post('/account/sessions/end', async (ctx) => {
    const m = await change(ctx);
    if (!m) return;
    const uid = String((ctx.request.body as any)?.uid ?? '').slice(0, 200);
    if (uid === m.session.uid || !(await service.endSession(m.account.id, uid))) return render(ctx, m, { error: 'No such session.' }, 404);
    await audit(ctx, m, 'session.end', { session: uid });
    await render(ctx, m, { message: 'Session ended.' });
  });
}

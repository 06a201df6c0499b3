// The sign-in steps at /interaction/:uid (oidc-provider's interactions). HTTP only: each route
// re-reads the interaction, checks its prompt, calls the domain and ends with
// interactionFinished (oidc-provider's example app, example/routes/koa.js).
import type Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import { authenticatePassword, recordSignIn } from '../accounts/accounts.service.ts';
import { normalizeEmail } from '../accounts/email.ts';
import { factorSummary, hasSecondFactor } from '../mfa/factors.ts';
import { verifyTotp } from '../mfa/totp.ts';
import { useBackupCode } from '../mfa/backup-codes.ts';
import { authenticationOptions, verifyAuthentication, type RelyingParty } from '../mfa/webauthn.ts';
import { isGatehouseError } from '../errors.ts';
import { allowFormRedirectTo } from '../http/security-headers.ts';
import type { Csrf } from '../http/csrf.ts';
import type { AuditSink } from '../audit/sink.ts';
import type { AuditAction } from '../audit/actions.ts';
import { ACR_MFA, ACR_PHR } from '../verify/index.ts';
import { signInPage, secondFactorPage, tooManyAttemptsPage } from '../../views/signin.ts';
import { errorView } from '../../views/error.ts';
import type { BruteForce } from './brute-force.ts';
import { endFlow, findFlow, startFlow } from './login-flow.ts';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import crypto from 'node:crypto';

export interface SignInDeps {
  db: Kysely<Database>;
  provider: () => Provider;
  csrf: Csrf;
  bruteForce: BruteForce;
  rp: RelyingParty;
  sealer: import('../crypto/seal.ts').Sealer;
  backupCodeKey: Buffer;
  audit: AuditSink;
}

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

/**
 * The brute-force key of an account: a hash of its normalized email, or a stand-in for a malformed
 * one. Hashed so that a 254-octet address still fits the rate-limit key column (varchar 255).
 */
export function accountKey(email: unknown): string {
  try {
    return `email:${crypto.createHash('sha256').update(normalizeEmail(email)).digest('base64url')}`;
  } catch {
    return `invalid:${crypto.createHash('sha256').update(String(email).slice(0, 1000)).digest('base64url')}`;
  }
}

/** A usernameless passkey names no account before it is verified: only the IP budget applies. */
function usernamelessKey(ctx: Context): string {
  return `passkey-ip:${ctx.ip}`;
}

export function signInRoutes(router: Router, deps: SignInDeps): void {
  const { db } = deps;

  async function details(ctx: Context): Promise<Details | null> {
    ctx.set('cache-control', 'no-store');
    try {
      const d = await deps.provider().interactionDetails(ctx.req, ctx.res);
      if (d.uid !== ctx.params.uid) throw new errors.SessionNotFound('interaction mismatch');
      return d;
    } catch (err) {
      if (!(err instanceof errors.SessionNotFound)) throw err;
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = errorView({ title: 'Sign-in expired', message: 'This sign-in has expired or was already completed. Go back to the application and start again.' });
      return null;
    }
  }

  function page(ctx: Context, d: Details, body: string, status = 200) {
    // The answer to these forms ends, through redirects, on the client's registered redirect URI.
    allowFormRedirectTo(ctx.res, ctx.state.cspNonce, [d.params.redirect_uri as string | undefined]);
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = body;
  }

  function passkeyOnly(d: Details): boolean {
    const acr = typeof d.params.acr_values === 'string' ? d.params.acr_values.split(' ') : [];
    return acr.length > 0 && acr.every((a) => a === ACR_PHR);
  }

  const pageContext = (ctx: Context) => ({ nonce: ctx.state.cspNonce as string, csrf: deps.csrf.token(ctx) });

  function signIn(ctx: Context, d: Details, extra: { error?: string; email?: string } = {}, status = 200) {
    page(ctx, d, signInPage({ ...pageContext(ctx), uid: d.uid, passkeyOnly: passkeyOnly(d), ...extra }), status);
  }

  async function secondFactor(ctx: Context, d: Details, accountId: string, method: 'totp' | 'backup', error?: string, status = 200) {
    const f = await factorSummary(db, accountId);
    page(ctx, d, secondFactorPage({ ...pageContext(ctx), uid: d.uid, method, hasTotp: f.totp, hasPasskey: f.passkeys > 0, hasBackupCodes: f.backup_codes_left > 0, ...(error ? { error } : {}) }), status);
  }

  function tooMany(ctx: Context, retryAfterSeconds: number, uid: string) {
    ctx.status = 429;
    ctx.set('retry-after', String(retryAfterSeconds));
    ctx.type = 'html';
    ctx.body = tooManyAttemptsPage({ retryAfterSeconds, uid });
  }

  const audit = (ctx: Context, action: AuditAction, outcome: 'success' | 'failure' | 'denied', actor: string, details: Record<string, unknown> = {}) =>
    deps.audit({ action, outcome, actor, ip: ctx.ip, target: actor.startsWith('usr_') ? actor : null, requestId: ctx.state.requestId, details });

  /** Guard a step: CSRF, then the brute-force budget of this IP and account. */
  async function guard(ctx: Context, key: string, uid: string, json = false): Promise<boolean> {
    deps.csrf.verify(ctx, json ? ctx.get('x-csrf-token') : (ctx.request.body as any)?._csrf);
    const verdict = await deps.bruteForce.check(ctx.ip, key);
    if (verdict.allowed) return true;
    await audit(ctx, 'ratelimit.trip', 'denied', 'anonymous', { scope: verdict.scope, step: ctx.path.split('/').pop() });
    if (json) {
      ctx.status = 429;
      ctx.set('retry-after', String(verdict.retryAfterSeconds));
      ctx.body = { error: 'too_many_attempts', error_description: `Too many failed attempts. Wait ${verdict.retryAfterSeconds} seconds and try again.` };
    } else tooMany(ctx, verdict.retryAfterSeconds, uid);
    return false;
  }

  async function failed(ctx: Context, key: string, actor: string, method: string, reason: string) {
    const { tripped } = await deps.bruteForce.fail(ctx.ip, key);
    await audit(ctx, 'signin.failure', 'failure', actor, { method, reason });
    if (tripped) await audit(ctx, 'ratelimit.trip', 'denied', actor, { method });
  }

  /** The last step: the person is signed in with these methods. */
  async function finish(ctx: Context, d: Details, accountId: string, email: string, amr: string[], method: string, asJson = false) {
    const phishingResistant = amr.includes('hwk') || amr.includes('swk');
    const acr = phishingResistant ? ACR_PHR : ACR_MFA;
    const requested = typeof d.params.acr_values === 'string' ? d.params.acr_values.split(' ') : [];
    if (requested.length && !requested.some((a) => a === acr || (a === ACR_MFA && acr === ACR_PHR))) {
      // acr_values asked for more than this sign-in gives: say so rather than hand back less.
      const result = { error: 'access_denied', error_description: 'the requested authentication level could not be met' };
      if (asJson) ctx.body = { location: await deps.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }) };
      else {
        await deps.provider().interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
        ctx.respond = false;
      }
      return;
    }
    await Promise.all([recordSignIn(db, accountId), deps.bruteForce.succeed(accountKey(email)), endFlow(db, d.uid)]);
    await audit(ctx, 'signin.success', 'success', accountId, { method, amr, acr, client_id: d.params.client_id });
    const result = { login: { accountId, amr: [...new Set([...amr, 'mfa'])], acr, remember: true } };
    if (asJson) {
      ctx.body = { location: await deps.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }) };
    } else {
      await deps.provider().interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
      ctx.respond = false;
    }
  }

  async function accountEmail(accountId: string): Promise<string> {
    const row = await db.selectFrom('account').select('email').where('id', '=', accountId).executeTakeFirst();
    return row?.email ?? '';
  }

  router.get('/interaction/:uid', async (ctx) => {
    const d = await details(ctx);
    if (!d) return;
    if (d.prompt.name === 'login') return signIn(ctx, d);
    if (d.prompt.name === 'consent') {
      // Every client is first-party (registered by an owner): consent is granted without a screen.
      const provider = deps.provider();
      const grant = d.grantId ? await provider.Grant.find(d.grantId) : new provider.Grant({ accountId: d.session!.accountId, clientId: d.params.client_id as string });
      if (!grant) throw new Error('grant not found');
      const missing = d.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
      const grantId = await grant.save();
      await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      ctx.respond = false;
      return;
    }
    throw new Error(`unknown prompt ${d.prompt.name}`);
  });

  router.post('/interaction/:uid/login', async (ctx) => {
    const d = await details(ctx);
    if (!d) return;
    if (d.prompt.name !== 'login' || passkeyOnly(d)) return signIn(ctx, d, { error: 'Sign in with a passkey.' }, 400);
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const email = typeof body.email === 'string' ? body.email.slice(0, 320) : '';
    const key = accountKey(email);
    if (!(await guard(ctx, key, d.uid))) return;
    const result = await authenticatePassword(db, email, body.password);
    if (!result.ok) {
      await failed(ctx, key, 'anonymous', 'password', result.reason);
      // One message for an unknown email and a wrong password (no enumeration).
      const message = result.reason === 'disabled' ? 'This account is disabled. Ask an owner to re-enable it.' : 'Incorrect email or password.';
      return signIn(ctx, d, { error: message, email }, 401);
    }
    const f = await factorSummary(db, result.account.id);
    if (!hasSecondFactor(f)) {
      await failed(ctx, key, result.account.id, 'password', 'no_second_factor');
      return signIn(ctx, d, { error: 'This account has no second factor. Ask an owner to reset your factors.', email }, 403);
    }
    await startFlow(db, d.uid, result.account.id, ['pwd']);
    ctx.redirect(`/interaction/${d.uid}/second-factor`);
    ctx.status = 303;
  });

  router.get('/interaction/:uid/second-factor', async (ctx) => {
    const d = await details(ctx);
    if (!d) return;
    const flow = await findFlow(db, d.uid);
    if (!flow) return signIn(ctx, d);
    const f = await factorSummary(db, flow.accountId);
    const method = ctx.query.method === 'backup' || !f.totp ? 'backup' : 'totp';
    await secondFactor(ctx, d, flow.accountId, method);
  });

  async function codeStep(ctx: Context, kind: 'totp' | 'backup') {
    const d = await details(ctx);
    if (!d) return;
    const flow = await findFlow(db, d.uid);
    if (!flow) return signIn(ctx, d, { error: 'Start again: enter your email and password.' }, 400);
    const email = await accountEmail(flow.accountId);
    const key = accountKey(email);
    if (!(await guard(ctx, key, d.uid))) return;
    const code = (ctx.request.body as any)?.code;
    if (kind === 'totp') {
      const r = await verifyTotp(db, deps.sealer, flow.accountId, code);
      if (r.ok) return finish(ctx, d, flow.accountId, email, [...flow.amr, 'otp'], 'password+totp');
      await failed(ctx, key, flow.accountId, 'totp', r.reason);
      const message = r.reason === 'replayed' ? 'This code was already used. Wait for the next code from your app.' : 'That code is not right. Check your authenticator app and try again.';
      return secondFactor(ctx, d, flow.accountId, 'totp', message, 401);
    }
    if (await useBackupCode(db, deps.backupCodeKey, flow.accountId, code)) {
      return finish(ctx, d, flow.accountId, email, [...flow.amr, 'otp'], 'password+backup_code');
    }
    await failed(ctx, key, flow.accountId, 'backup_code', 'invalid');
    return secondFactor(ctx, d, flow.accountId, 'backup', 'That backup code is not valid, or was already used.', 401);
  }

  router.post('/interaction/:uid/totp', (ctx) => codeStep(ctx, 'totp'));
  router.post('/interaction/:uid/backup-code', (ctx) => codeStep(ctx, 'backup'));

  // Passkeys: JSON endpoints driven by static/passkey.js. Without a password first, this is the
  // usernameless sign-in (a discoverable credential); after one, a second factor for that account.
  /** The interaction, the password step if any, and the brute-force key, once guarded. */
  async function passkeyStep(ctx: Context) {
    const d = await details(ctx);
    if (!d) return null;
    ctx.type = 'json';
    const flow = await findFlow(db, d.uid);
    const key = flow ? accountKey(await accountEmail(flow.accountId)) : usernamelessKey(ctx);
    return (await guard(ctx, key, d.uid, true)) ? { d, flow, key } : null;
  }

  router.post('/interaction/:uid/passkey/options', async (ctx) => {
    const step = await passkeyStep(ctx);
    if (step) ctx.body = await authenticationOptions(db, deps.rp, `signin:${step.d.uid}`, step.flow?.accountId ?? null);
  });

  router.post('/interaction/:uid/passkey/verify', async (ctx) => {
    const step = await passkeyStep(ctx);
    if (!step) return;
    const { d, flow, key } = step;
    try {
      const signedIn = await verifyAuthentication(db, deps.rp, `signin:${d.uid}`, (ctx.request.body as any)?.response);
      if (flow && signedIn.accountId !== flow.accountId) throw new Error('passkey of another account');
      const email = await accountEmail(signedIn.accountId);
      const active = await db.selectFrom('account').select('status').where('id', '=', signedIn.accountId).executeTakeFirst();
      if (active?.status !== 'active') {
        ctx.status = 403;
        ctx.body = { error: 'account_disabled', error_description: 'This account is disabled. Ask an owner to re-enable it.' };
        return;
      }
      await finish(ctx, d, signedIn.accountId, email, [...(flow?.amr ?? []), ...signedIn.amr], flow ? 'password+passkey' : 'passkey', true);
    } catch (err) {
      await failed(ctx, key, flow?.accountId ?? 'anonymous', 'passkey', isGatehouseError(err) ? err.code : 'invalid');
      ctx.status = isGatehouseError(err) && err.code === 'VALIDATION' ? 400 : 401;
      ctx.body = { error: 'passkey_failed', error_description: isGatehouseError(err) ? err.message : 'The passkey could not be verified.' };
    }
  });
}

// The sign-in steps at /interaction/:uid (oidc-provider's interactions). HTTP only: each route
// re-reads the interaction, checks its prompt, calls the domain and ends with
// interactionFinished (oidc-provider's example app, example/routes/koa.js).
import { addressKey } from '../http/address-key.ts';
import type Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import { normalizeEmail } from '../accounts/email.ts';
import type { CodeFactor } from '../mfa/strategy.ts';
import type { FactorSummary } from '../mfa/factors.ts';
import { isGatehouseError } from '../errors.ts';
import { allowFormRedirectTo } from '../http/security-headers.ts';
import type { Csrf } from '../http/csrf.ts';
import type { AuditSink } from '../audit/sink.ts';
import type { AuditAction } from '../audit/actions.ts';
import { ACR_PHR, requestedAcr } from '../oidc/acr.ts';
import { signInPage, secondFactorPage, tooManyAttemptsPage } from '../../views/signin.ts';
import { errorView } from '../../views/error.ts';
import type { Attempt, BruteForce, Subject, Ticket } from './brute-force.ts';
import type { DeviceCookies } from './device-cookie.ts';
import type { SignInService } from './signin.service.ts';
import crypto from 'node:crypto';

export interface SignInDeps {
  signIn: SignInService;
  provider: () => Provider;
  csrf: Csrf;
  bruteForce: BruteForce;
  deviceCookies: DeviceCookies;
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
  return `passkey-ip:${addressKey(ctx.ip)}`;
}

export function signInRoutes(router: Router, deps: SignInDeps): void {
  const { signIn: service } = deps;

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
      ctx.body = errorView({
        title: 'Sign-in expired',
        message: 'This sign-in has expired or was already completed. Go back to the application and start again.',
      });
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
    const acr = requestedAcr(d.params.acr_values);
    return acr.length > 0 && acr.every((a) => a === ACR_PHR);
  }

  const loginHint = (hint: unknown) => (typeof hint === 'string' && hint.length <= 254 && hint.includes('@') ? hint : undefined);

  const pageContext = (ctx: Context) => ({ nonce: ctx.state.cspNonce as string, csrf: deps.csrf.token(ctx) });

  function signIn(ctx: Context, d: Details, extra: { error?: string; email?: string } = {}, status = 200) {
    // OIDC Core §3.1.2.1 login_hint: pre-fills Email only; the page is the same whether or not
    // an account has that address, so the hint reveals nothing.
    const email = extra.email ?? loginHint(d.params.login_hint);
    page(ctx, d, signInPage({ ...pageContext(ctx), uid: d.uid, passkeyOnly: passkeyOnly(d), ...extra, email }), status);
  }

  async function secondFactor(
    ctx: Context,
    d: Details,
    accountId: string,
    requested: string | undefined,
    retry?: { factor: CodeFactor; error: string },
    known?: FactorSummary,
  ) {
    const { method, summary: f } = await service.secondFactorPage(accountId, requested, retry?.factor, known);
    const error = retry?.error;
    const status = retry ? 401 : 200;
    page(
      ctx,
      d,
      secondFactorPage({
        ...pageContext(ctx),
        uid: d.uid,
        location: `/interaction/${d.uid}/second-factor`,
        method,
        hasTotp: f.totp,
        hasPasskey: f.passkeys > 0,
        hasBackupCodes: f.backup_codes_left > 0,
        ...(error ? { error } : {}),
      }),
      status,
    );
  }

  function tooMany(ctx: Context, retryAfterSeconds: number, uid: string) {
    ctx.status = 429;
    ctx.set('retry-after', String(retryAfterSeconds));
    ctx.type = 'html';
    ctx.body = tooManyAttemptsPage({ retryAfterSeconds, uid });
  }

  const audit = (
    ctx: Context,
    action: AuditAction,
    outcome: 'success' | 'failure' | 'denied',
    actor: string,
    details: Record<string, unknown> = {},
    target: string | null = actor.startsWith('usr_') ? actor : null,
  ) =>
    deps.audit({
      action,
      outcome,
      actor,
      ip: ctx.ip,
      target,
      requestId: ctx.state.requestId,
      details,
    });

  /** Who attempts: this address, the account's key, and this browser's device cookie for that account if valid. */
  const subject = (ctx: Context, key: string): Subject => ({
    // An IPv6 attacker holds a whole /64: count it as one address (src/http/address-key.ts).
    ip: addressKey(ctx.ip),
    accountKey: key,
    device: key.startsWith('email:') ? deps.deviceCookies.read(ctx, key) : null,
  });

  /** Guard a step: CSRF, then take the brute-force points of this attempt before anything is verified. */
  async function guard(ctx: Context, key: string, uid: string, json = false): Promise<Ticket | null> {
    deps.csrf.verify(ctx, json ? ctx.get('x-csrf-token') : (ctx.request.body as any)?._csrf);
    const verdict = await deps.bruteForce.attempt(subject(ctx, key));
    if (verdict.allowed) return verdict.ticket;
    await refuse(ctx, verdict, uid, json);
    return null;
  }

  async function refuse(ctx: Context, verdict: Exclude<Attempt, { allowed: true }>, uid: string, json: boolean) {
    // Audited once per key and window (the refusal that went over), not once per refused request.
    if (verdict.firstRefusal)
      await audit(ctx, 'ratelimit.trip', 'denied', 'anonymous', { scope: verdict.scope, step: ctx.path.split('/').pop() });
    if (json) {
      ctx.status = 429;
      ctx.set('retry-after', String(verdict.retryAfterSeconds));
      ctx.body = {
        error: 'too_many_attempts',
        error_description: `Too many failed attempts. Wait ${verdict.retryAfterSeconds} seconds and try again.`,
      };
    } else tooMany(ctx, verdict.retryAfterSeconds, uid);
  }

  /** A wrong credential: its points stay spent. `target`: the existing account it was for, if any. */
  async function failed(ctx: Context, ticket: Ticket, actor: string, target: string | null, method: string, reason: string) {
    const { tripped } = await deps.bruteForce.failed(ticket);
    await audit(ctx, 'signin.failure', 'failure', actor, { method, reason }, target);
    if (tripped) await audit(ctx, 'ratelimit.trip', 'denied', actor, { method }, target);
  }

  /** The last step: the person is signed in with these methods. */
  async function finish(
    ctx: Context,
    d: Details,
    ticket: Ticket,
    accountId: string,
    email: string,
    amr: string[],
    method: string,
    asJson = false,
  ) {
    const acr = service.level(amr, d.params.acr_values);
    if (acr === null) {
      await deps.bruteForce.passed(ticket);
      // acr_values asked for more than this sign-in gives: say so rather than hand back less.
      const result = { error: 'access_denied', error_description: 'the requested authentication level could not be met' };
      if (asJson)
        ctx.body = { location: await deps.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }) };
      else {
        await deps.provider().interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
        ctx.respond = false;
      }
      return;
    }
    await Promise.all([service.finish(d.uid, accountId), deps.bruteForce.finished(ticket)]);
    deps.deviceCookies.issue(ctx, accountKey(email));
    await audit(ctx, 'signin.success', 'success', accountId, { method, amr, acr, client_id: d.params.client_id });
    const result = { login: { accountId, amr: [...new Set([...amr, 'mfa'])], acr, remember: true } };
    if (asJson) {
      ctx.body = { location: await deps.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }) };
    } else {
      await deps.provider().interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
      ctx.respond = false;
    }
  }

  router.get('/interaction/:uid', async (ctx) => {
    const d = await details(ctx);
    if (!d) return;
    if (d.prompt.name === 'login') return signIn(ctx, d);
    if (d.prompt.name === 'consent') {
      // Every client is first-party (registered by an owner): consent is granted without a screen.
      const provider = deps.provider();
      const grant = d.grantId
        ? await provider.Grant.find(d.grantId)
        : new provider.Grant({ accountId: d.session!.accountId, clientId: d.params.client_id as string });
      if (!grant) throw new Error('grant not found');
      const missing = d.prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
        grant.addResourceScope(indicator, scopes.join(' '));
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
    const ticket = await guard(ctx, accountKey(email), d.uid);
    if (!ticket) return;
    const result = await service.password(d.uid, email, body.password);
    if (!result.ok && result.reason === 'no_second_factor') {
      await failed(ctx, ticket, result.actor, result.target, 'password', 'no_second_factor');
      return signIn(ctx, d, { error: 'This account has no second factor. Ask an owner to reset your factors.', email }, 403);
    }
    if (!result.ok) {
      await failed(ctx, ticket, result.actor, result.target, 'password', result.reason);
      // One message for an unknown email and a wrong password (no enumeration).
      const message =
        result.reason === 'disabled' ? 'This account is disabled. Ask an owner to re-enable it.' : 'Incorrect email or password.';
      return signIn(ctx, d, { error: message, email }, 401);
    }
    await deps.bruteForce.passed(ticket);
    // The second-factor page itself, not a redirect to it: one round trip less. The page carries a
    // fresh CSRF token and tells the browser its address is GET …/second-factor (data-location,
    // static/passkey.js), so a reload asks that page again rather than resending the password.
    await secondFactor(ctx, d, result.accountId, undefined, undefined, result.factors);
  });

  router.get('/interaction/:uid/second-factor', async (ctx) => {
    const d = await details(ctx);
    if (!d) return;
    const flow = await service.flow(d.uid);
    if (!flow) return signIn(ctx, d);
    await secondFactor(ctx, d, flow.accountId, typeof ctx.query.method === 'string' ? ctx.query.method : undefined);
  });

  /** The step of a typed second factor (TOTP, backup code, …): one route per code factor of the registry. */
  async function codeStep(ctx: Context, factor: CodeFactor) {
    const d = await details(ctx);
    if (!d) return;
    const flow = await service.flow(d.uid);
    if (!flow) return signIn(ctx, d, { error: 'Start again: enter your email and password.' }, 400);
    const ticket = await guard(ctx, accountKey(flow.email), d.uid);
    if (!ticket) return;
    const r = await service.verifyCode(factor, flow.accountId, (ctx.request.body as any)?.code);
    if (r.ok) return finish(ctx, d, ticket, flow.accountId, flow.email, [...flow.amr, ...factor.amr], `password+${factor.method}`);
    await failed(ctx, ticket, flow.accountId, flow.accountId, factor.method, r.reason);
    return secondFactor(ctx, d, flow.accountId, undefined, { factor, error: r.message });
  }

  for (const factor of service.factors.codeFactors) router.post(`/interaction/:uid/${factor.path}`, (ctx) => codeStep(ctx, factor));

  // Passkeys: JSON endpoints driven by static/passkey.js. Without a password first, this is the
  // usernameless sign-in (a discoverable credential); after one, a second factor for that account.
  /** The interaction, the password step if any, and the brute-force key. */
  async function passkeyStep(ctx: Context) {
    const d = await details(ctx);
    if (!d) return null;
    ctx.type = 'json';
    const flow = await service.flow(d.uid);
    return { d, flow, key: flow ? accountKey(flow.email) : usernamelessKey(ctx) };
  }

  router.post('/interaction/:uid/passkey/options', async (ctx) => {
    const step = await passkeyStep(ctx);
    if (!step) return;
    // Options verify nothing: refused while the budget is used up, but they take no points.
    deps.csrf.verify(ctx, ctx.get('x-csrf-token'));
    const verdict = await deps.bruteForce.peek(subject(ctx, step.key));
    if (!verdict.allowed) return refuse(ctx, verdict, step.d.uid, true);
    ctx.body = await service.passkeyOptions(step.d.uid, step.flow?.accountId ?? null);
  });

  router.post('/interaction/:uid/passkey/verify', async (ctx) => {
    const step = await passkeyStep(ctx);
    if (!step) return;
    const { d, flow, key } = step;
    const ticket = await guard(ctx, key, d.uid, true);
    if (!ticket) return;
    try {
      const signedIn = await service.passkey(d.uid, flow, (ctx.request.body as any)?.response);
      if (!signedIn.active) {
        await deps.bruteForce.passed(ticket);
        ctx.status = 403;
        ctx.body = { error: 'account_disabled', error_description: 'This account is disabled. Ask an owner to re-enable it.' };
        return;
      }
      const method = service.factors.passkeys.method;
      await finish(
        ctx,
        d,
        ticket,
        signedIn.accountId,
        signedIn.email,
        [...(flow?.amr ?? []), ...signedIn.amr],
        flow ? `password+${method}` : method,
        true,
      );
    } catch (err) {
      const accountId = flow?.accountId ?? 'anonymous';
      const reason = isGatehouseError(err) ? err.code : 'invalid';
      await failed(ctx, ticket, accountId, flow?.accountId ?? null, service.factors.passkeys.method, reason);
      ctx.status = isGatehouseError(err) && err.code === 'VALIDATION' ? 400 : 401;
      ctx.body = { error: 'passkey_failed', error_description: isGatehouseError(err) ? err.message : 'The passkey could not be verified.' };
    }
  });
}

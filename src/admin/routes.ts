// /admin: the owners' console (docs/architecture.md, "Entry points"). It signs in through Gatehouse itself
// as the built-in client `gatehouse-admin` (code + PKCE, the code exchanged at Gatehouse's own
// token endpoint, the ID token verified), then keeps its own session. This file wires the parts
// and holds the sign-in routes; the pages live in users.routes.ts, clients.routes.ts,
// keys.routes.ts and audit.routes.ts. Routes only translate HTTP to domain calls.

import type Router from '@koa/router';
import type { Context } from 'koa';
import type { JWK } from 'jose';
import { findAccount } from '../accounts/accounts.service.ts';
import type { ClientCache } from '../clients/client-cache.ts';
import type { Sealer } from '../crypto/seal.ts';
import type { Csrf } from '../http/csrf.ts';
import type { KeyPolicy } from '../keys/keys.service.ts';
import type { Logger } from '../log.ts';
import { deniedPage, loginProblemPage, signedOutPage } from '../../views/admin/pages.ts';
import { adminAccess, hasAnyAccess, homeFor } from './access.ts';
import { ADMIN_CLIENT_ID, adminSignedOutUri, ensureAdminClient } from './admin-client.ts';
import { auditRoutes } from './audit.routes.ts';
import { clientRoutes } from './clients.routes.ts';
import { agentRoutes } from './agents.routes.ts';
import { createGuard, loginUrl } from './guard.ts';
import { one, safeReturnTo } from './input.ts';
import { keyRoutes } from './keys.routes.ts';
import { AdminLoginError, LOGIN_COOKIE, exchangeCode, openPendingLogin, sameString, startLogin, verifyIdToken } from './oidc-login.ts';
import { ADMIN_SESSION_COOKIE, createAdminSession, endAdminSession, findAdminSession } from './sessions.ts';
import { ADMIN_LOGIN_TTL, FRESH_AUTH_SECONDS } from '../oidc/lifetimes.ts';
import { userRoutes } from './users.routes.ts';
import type { Db } from '../db/handle.ts';

export interface AdminDeps {
  db: Db;
  csrf: Csrf;
  sealer: Sealer;
  issuer: string;
  /** Cookies get `Secure` (HTTPS). */
  secure: boolean;
  /** The JWKS this instance publishes: the ID token must verify with one of them. */
  publishedKeys: () => JWK[];
  keyPolicy: KeyPolicy;
  clients: ClientCache;
  log: Logger;
  /** Tests: what the callback uses to reach the token endpoint. */
  fetchImpl?: typeof fetch;
}

export async function adminRoutes(router: Router, deps: AdminDeps): Promise<void> {
  const { db } = deps;
  if (await ensureAdminClient(db, deps.issuer)) deps.log.info({ client_id: ADMIN_CLIENT_ID }, 'admin console client registered');
  deps.clients.invalidate();
  const guard = createGuard({ db, csrf: deps.csrf });
  const cookie = (ctx: Context, name: string, value: string | null, maxAgeSeconds?: number) =>
    ctx.cookies.set(name, value, {
      httpOnly: true,
      sameSite: 'lax',
      secure: deps.secure,
      path: '/admin',
      overwrite: true,
      ...(maxAgeSeconds ? { maxAge: maxAgeSeconds * 1000 } : {}),
    });

  router.get('/admin', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const found = await findAdminSession(db, ctx.cookies.get(ADMIN_SESSION_COOKIE));
    if (!found) return ctx.redirect(loginUrl('/admin'));
    const access = adminAccess(found.account);
    if (!hasAnyAccess(access)) return guard.html(ctx, deniedPage({ email: found.account.email, role: found.account.role }), 403);
    ctx.redirect(homeFor(access));
  });

  router.get('/admin/login', (ctx) => {
    ctx.set('cache-control', 'no-store');
    // Only one max_age is ever asked for: the console's own freshness rule.
    const maxAge = ctx.query.max_age !== undefined ? FRESH_AUTH_SECONDS : null;
    const returnTo = safeReturnTo(one(ctx.query.return_to), '') || null;
    const login = startLogin(deps.sealer, { issuer: deps.issuer, maxAge, returnTo });
    cookie(ctx, LOGIN_COOKIE, login.cookie, ADMIN_LOGIN_TTL);
    ctx.redirect(login.url);
  });

  router.get('/admin/callback', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const pending = openPendingLogin(deps.sealer, ctx.cookies.get(LOGIN_COOKIE));
    cookie(ctx, LOGIN_COOKIE, null); // single use, whatever happens next
    const problem = (message: string, status = 400) => guard.html(ctx, loginProblemPage(message), status);
    if (!pending || !sameString(one(ctx.query.state), pending.state))
      return problem('This sign-in expired or was started in another window. Sign in again.');
    // RFC 9207: the response says which issuer sent it; a mix-up attack would name another.
    if (one(ctx.query.iss) !== deps.issuer) return problem('The sign-in response did not come from this Gatehouse.');
    const error = one(ctx.query.error, 64);
    if (error) return problem(`The sign-in was not completed (${error}).`);
    const code = one(ctx.query.code, 512);
    if (!code) return problem('The sign-in response carried no code.');
    let login;
    try {
      const { idToken } = await exchangeCode({
        issuer: deps.issuer,
        code,
        verifier: pending.verifier,
        ...(deps.fetchImpl ? { fetchImpl: deps.fetchImpl } : {}),
      });
      login = await verifyIdToken(idToken, {
        issuer: deps.issuer,
        keys: deps.publishedKeys(),
        nonce: pending.nonce,
        maxAge: pending.maxAge,
      });
    } catch (err) {
      if (!(err instanceof AdminLoginError)) throw err;
      deps.log.warn({ err: err.message, requestId: ctx.state.requestId }, 'admin console sign-in refused');
      return problem(`The sign-in could not be completed: ${err.message}. Sign in again.`);
    }
    const account = await findAccount(db, login.accountId);
    if (!account || account.status !== 'active') return problem('This account is disabled.', 403);
    const access = adminAccess(account);
    if (!hasAnyAccess(access)) return guard.html(ctx, deniedPage({ email: account.email, role: account.role }), 403);
    // A new session id at every sign-in (OWASP: renew the session id after authentication).
    await endAdminSession(db, ctx.cookies.get(ADMIN_SESSION_COOKIE));
    const { token } = await createAdminSession(db, { accountId: account.id, authTime: login.authTime, amr: login.amr, acr: login.acr });
    cookie(ctx, ADMIN_SESSION_COOKIE, token);
    ctx.status = 303;
    ctx.redirect(pending.returnTo ?? homeFor(access));
  });

  router.post('/admin/logout', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    deps.csrf.verify(ctx, (ctx.request.body as Record<string, unknown> | undefined)?._csrf);
    const token = ctx.cookies.get(ADMIN_SESSION_COOKIE);
    const found = await findAdminSession(db, token);
    await endAdminSession(db, token);
    cookie(ctx, ADMIN_SESSION_COOKIE, null);
    if (found)
      await guard.record(ctx, found.account.id, {
        action: 'session.end',
        outcome: 'success',
        target: found.account.id,
        details: { console: 'admin' },
      });
    // Then out of Gatehouse too: on a shared computer the next person must not walk back in.
    const params = new URLSearchParams({ client_id: ADMIN_CLIENT_ID, post_logout_redirect_uri: adminSignedOutUri(deps.issuer) });
    ctx.status = 303;
    ctx.redirect(`/session/end?${params}`);
  });

  router.get('/admin/signed-out', (ctx) => {
    ctx.set('cache-control', 'no-store');
    guard.html(ctx, signedOutPage());
  });

  userRoutes(router, { db, guard, issuer: deps.issuer });
  clientRoutes(router, { db, guard });
  agentRoutes(router, { db, guard });
  keyRoutes(router, { db, guard, sealer: deps.sealer, keyPolicy: deps.keyPolicy });
  auditRoutes(router, { db, guard });
}

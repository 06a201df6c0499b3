// The admin console signing in through Gatehouse as any relying party would (OIDC Core §3.1,
// code flow; PKCE per RFC 7636; OAuth 2.1). What the browser carries between /admin/login and
// /admin/callback (state, nonce, PKCE verifier, where to return) is sealed under the master key
// in a short-lived cookie: bound to this browser, unreadable and unforgeable by it, no row to
// clean up. The code is exchanged at Gatehouse's own token endpoint over HTTP, and the ID token
// is checked against the keys this instance publishes.
import { ADMIN_LOGIN_TTL } from '../oidc/lifetimes.ts';
import crypto from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWK } from 'jose';
import type { Sealer } from '../crypto/seal.ts';
import { GatehouseError } from '../errors.ts';
import { ACR_MFA, ACR_PHR } from '../verify/index.ts';
import { ADMIN_CLIENT_ID, adminRedirectUri } from './admin-client.ts';

export const LOGIN_COOKIE = 'gh_admin_login';
/** Clock skew tolerated on exp, iat and auth_time. */
const CLOCK_SKEW_SECONDS = 30;
const SEAL_CONTEXT = 'admin_login_v1';

export interface PendingLogin {
  state: string;
  nonce: string;
  verifier: string;
  /** max_age sent, if any: auth_time is checked against it at the callback. */
  maxAge: number | null;
  returnTo: string | null;
  /** Unix seconds. */
  exp: number;
}

const random = () => crypto.randomBytes(32).toString('base64url');

/** The authorization request and the sealed cookie value that goes with it. */
export function startLogin(
  sealer: Sealer,
  opts: { issuer: string; maxAge: number | null; returnTo: string | null; now?: number },
): { url: string; cookie: string; pending: PendingLogin } {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const pending: PendingLogin = {
    state: random(),
    nonce: random(),
    verifier: random(),
    maxAge: opts.maxAge,
    returnTo: opts.returnTo,
    exp: now + ADMIN_LOGIN_TTL,
  };
  const params = new URLSearchParams({
    client_id: ADMIN_CLIENT_ID,
    response_type: 'code',
    scope: 'openid email',
    redirect_uri: adminRedirectUri(opts.issuer),
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: crypto.createHash('sha256').update(pending.verifier).digest('base64url'),
    code_challenge_method: 'S256',
    ...(opts.maxAge !== null ? { max_age: String(opts.maxAge) } : {}),
  });
  return { url: `${opts.issuer}/auth?${params}`, cookie: sealer.seal(JSON.stringify(pending), SEAL_CONTEXT), pending };
}

/** The pending sign-in of this browser, or null if absent, altered or expired. */
export function openPendingLogin(sealer: Sealer, cookie: unknown, now = Math.floor(Date.now() / 1000)): PendingLogin | null {
  if (typeof cookie !== 'string' || cookie.length > 2000) return null;
  try {
    const p = JSON.parse(sealer.open(cookie, SEAL_CONTEXT).toString('utf8')) as PendingLogin;
    return typeof p.exp === 'number' && p.exp > now ? p : null;
  } catch {
    return null;
  }
}

export function sameString(a: unknown, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

/** The console's own sign-in failed; the message says which check refused it. */
export class AdminLoginError extends GatehouseError {
  override name = 'AdminLoginError';
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

/**
 * Exchange the code at the token endpoint (client_id + code_verifier: a public client).
 * `fetchImpl` is for tests.
 */
export async function exchangeCode(opts: {
  issuer: string;
  code: string;
  verifier: string;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}): Promise<{ idToken: string }> {
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: opts.code,
    redirect_uri: adminRedirectUri(opts.issuer),
    code_verifier: opts.verifier,
    client_id: ADMIN_CLIENT_ID,
  });
  let res: Response;
  try {
    res = await (opts.fetchImpl ?? fetch)(`${opts.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
      redirect: 'error',
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
  } catch (err) {
    throw new AdminLoginError(`the token endpoint could not be reached (${(err as Error).message})`);
  }
  const json = (await res.json().catch(() => ({}))) as { id_token?: unknown; error?: unknown };
  if (!res.ok)
    throw new AdminLoginError(
      `the token endpoint refused the code (${typeof json.error === 'string' ? json.error.slice(0, 64) : res.status})`,
    );
  if (typeof json.id_token !== 'string') throw new AdminLoginError('the token response has no ID token');
  return { idToken: json.id_token };
}

export interface VerifiedLogin {
  accountId: string;
  authTime: Date;
  amr: string[];
  acr: string | null;
}

/**
 * The checks of OIDC Core §3.1.3.7: signature with a published key and the expected algorithm,
 * iss, aud (and azp when several audiences), exp and iat, nonce, auth_time against max_age.
 * Also: an acr Gatehouse issues, so that a token from some other sign-in path cannot pass.
 */
export async function verifyIdToken(
  idToken: string,
  opts: { issuer: string; keys: JWK[]; nonce: string; maxAge: number | null; now?: number },
): Promise<VerifiedLogin> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  let payload;
  try {
    ({ payload } = await jwtVerify(idToken, createLocalJWKSet({ keys: opts.keys }), {
      issuer: opts.issuer,
      audience: ADMIN_CLIENT_ID,
      algorithms: ['RS256'], // the client's id_token_signed_response_alg (the OIDC default)
      clockTolerance: CLOCK_SKEW_SECONDS,
      currentDate: new Date(now * 1000),
      requiredClaims: ['sub', 'iat', 'exp', 'nonce', 'auth_time'],
    }));
  } catch (err) {
    const reason = err instanceof joseErrors.JOSEError ? err.code : 'invalid';
    throw new AdminLoginError(`the ID token was not accepted (${reason})`);
  }
  if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== ADMIN_CLIENT_ID)
    throw new AdminLoginError('the ID token was issued to another client (azp)');
  if (!sameString(payload.nonce, opts.nonce)) throw new AdminLoginError('the ID token does not answer this sign-in (nonce)');
  const authTime = payload.auth_time;
  if (typeof authTime !== 'number' || !Number.isFinite(authTime) || authTime > now + CLOCK_SKEW_SECONDS)
    throw new AdminLoginError('the ID token has no valid auth_time');
  if (opts.maxAge !== null && now - authTime > opts.maxAge + CLOCK_SKEW_SECONDS)
    throw new AdminLoginError('the sign-in is older than was asked for (max_age)');
  const acr = typeof payload.acr === 'string' ? payload.acr : null;
  if (acr !== ACR_MFA && acr !== ACR_PHR) throw new AdminLoginError('the sign-in did not use two factors (acr)');
  if (typeof payload.sub !== 'string' || !/^usr_[A-Za-z0-9_-]{1,64}$/.test(payload.sub))
    throw new AdminLoginError('the ID token does not name a person');
  const amr = Array.isArray(payload.amr) ? payload.amr.filter((m): m is string => typeof m === 'string').slice(0, 10) : [];
  return { accountId: payload.sub, authTime: new Date(authTime * 1000), amr, acr };
}

// The console's relying-party checks (OIDC Core §3.1.3.7), attacked one by one with ID tokens
// signed by keys the test controls.
import crypto from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { ADMIN_CLIENT_ID } from '../../src/admin/admin-client.ts';
import { AdminLoginError, exchangeCode, openPendingLogin, startLogin, verifyIdToken } from '../../src/admin/oidc-login.ts';
import { createSealer } from '../../src/crypto/seal.ts';

const ISSUER = 'https://id.example.com';
const NOW = 1_800_000_000;

describe('ID token verification', () => {
  let key: CryptoKey;
  let jwk: JWK;
  let otherKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    otherKey = (await generateKeyPair('RS256')).privateKey;
  });

  const claims = (over: Record<string, unknown> = {}) => ({
    iss: ISSUER,
    aud: ADMIN_CLIENT_ID,
    sub: 'usr_AAAAAAAAAAAAAAAAAAAA',
    nonce: 'n-1',
    iat: NOW - 5,
    exp: NOW + 3600,
    auth_time: NOW - 60,
    acr: 'urn:gatehouse:acr:mfa',
    amr: ['pwd', 'otp', 'mfa'],
    ...over,
  });
  const sign = (c: Record<string, unknown>, k: CryptoKey = key, header: Record<string, unknown> = { alg: 'RS256', kid: 'k1' }) =>
    new SignJWT(c).setProtectedHeader(header as any).sign(k);
  const verify = (token: string, opts: { nonce?: string; maxAge?: number | null } = {}) =>
    verifyIdToken(token, { issuer: ISSUER, keys: [jwk], nonce: opts.nonce ?? 'n-1', maxAge: opts.maxAge ?? null, now: NOW });

  it('accepts a genuine token and reads who, when and how', async () => {
    const r = await verify(await sign(claims()));
    expect(r).toEqual({
      accountId: 'usr_AAAAAAAAAAAAAAAAAAAA',
      authTime: new Date((NOW - 60) * 1000),
      amr: ['pwd', 'otp', 'mfa'],
      acr: 'urn:gatehouse:acr:mfa',
    });
  });

  it.each([
    ['another issuer', { iss: 'https://evil.example' }],
    ['another audience', { aud: 'some-other-client' }],
    ['several audiences without azp', { aud: [ADMIN_CLIENT_ID, 'other'] }],
    ['expired', { exp: NOW - 3600, iat: NOW - 7200 }],
    ['another nonce', { nonce: 'n-2' }],
    ['no nonce', { nonce: undefined }],
    ['no auth_time', { auth_time: undefined }],
    ['auth_time in the future', { auth_time: NOW + 600 }],
    ['no second factor', { acr: 'urn:example:pwd-only' }],
    ['a subject that is not a person', { sub: 'svc_x' }],
  ])('refuses a token with %s', async (_name, over) => {
    await expect(verify(await sign(claims(over)))).rejects.toBeInstanceOf(AdminLoginError);
  });

  it('accepts several audiences when azp names the console', async () => {
    await expect(verify(await sign(claims({ aud: [ADMIN_CLIENT_ID, 'other'], azp: ADMIN_CLIENT_ID })))).resolves.toBeTruthy();
  });

  it('refuses a token signed by an unpublished key, with another algorithm, or unsigned', async () => {
    await expect(verify(await sign(claims(), otherKey))).rejects.toThrow(/not accepted/);
    const hs = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(crypto.randomBytes(32));
    await expect(verify(hs)).rejects.toThrow(/not accepted/);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}.`;
    await expect(verify(unsigned)).rejects.toThrow(/not accepted/);
  });

  it('refuses a sign-in older than the max_age that was asked for', async () => {
    const old = await sign(claims({ auth_time: NOW - 301 - 30 }));
    await expect(verify(old, { maxAge: 300 })).rejects.toThrow(/max_age/);
    await expect(verify(old, { maxAge: null })).resolves.toBeTruthy();
    await expect(verify(await sign(claims({ auth_time: NOW - 200 })), { maxAge: 300 })).resolves.toBeTruthy();
  });
});

describe('the pending sign-in cookie', () => {
  const sealer = createSealer(crypto.randomBytes(32));

  it('carries state, nonce and verifier sealed, and the authorization request uses S256 and max_age', () => {
    const { url, cookie, pending } = startLogin(sealer, { issuer: ISSUER, maxAge: 300, returnTo: '/admin/keys', now: NOW });
    const u = new URL(url);
    expect(u.origin + u.pathname).toBe(`${ISSUER}/auth`);
    expect(u.searchParams.get('code_challenge')).toBe(crypto.createHash('sha256').update(pending.verifier).digest('base64url'));
    expect(u.searchParams.get('max_age')).toBe('300');
    expect(u.searchParams.get('redirect_uri')).toBe(`${ISSUER}/admin/callback`);
    expect(cookie).not.toContain(pending.verifier);
    expect(openPendingLogin(sealer, cookie, NOW + 10)).toEqual(pending);
  });

  it('is refused when altered, sealed under another key, or expired', () => {
    const { cookie } = startLogin(sealer, { issuer: ISSUER, maxAge: null, returnTo: null, now: NOW });
    expect(new URL(startLogin(sealer, { issuer: ISSUER, maxAge: null, returnTo: null }).url).searchParams.has('max_age')).toBe(false);
    // Change the second-to-last character (the last one may carry only padding bits).
    const flipped = cookie.slice(0, -2) + (cookie.at(-2) === 'A' ? 'B' : 'A') + cookie.slice(-1);
    expect(openPendingLogin(sealer, flipped, NOW)).toBeNull();
    expect(openPendingLogin(createSealer(crypto.randomBytes(32)), cookie, NOW)).toBeNull();
    expect(openPendingLogin(sealer, cookie, NOW + 601)).toBeNull();
    expect(openPendingLogin(sealer, undefined, NOW)).toBeNull();
  });
});

describe('the code exchange', () => {
  it('posts the code with the PKCE verifier as a public client, and refuses an error answer', async () => {
    let seen: { url: string; body: string } | null = null;
    const ok = (async (url: string, init: RequestInit) => {
      seen = { url, body: String(init.body) };
      return new Response(JSON.stringify({ id_token: 'x.y.z', access_token: 'a' }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    }) as unknown as typeof fetch;
    await expect(exchangeCode({ issuer: ISSUER, code: 'c', verifier: 'v', fetchImpl: ok })).resolves.toEqual({ idToken: 'x.y.z' });
    expect(seen!.url).toBe(`${ISSUER}/token`);
    expect(Object.fromEntries(new URLSearchParams(seen!.body))).toEqual({
      grant_type: 'authorization_code',
      code: 'c',
      redirect_uri: `${ISSUER}/admin/callback`,
      code_verifier: 'v',
      client_id: ADMIN_CLIENT_ID,
    });
    const refused = (async () => new Response(JSON.stringify({ error: 'invalid_grant' }), { status: 400 })) as unknown as typeof fetch;
    await expect(exchangeCode({ issuer: ISSUER, code: 'c', verifier: 'v', fetchImpl: refused })).rejects.toThrow(
      /refused the code \(invalid_grant\)/,
    );
    const noIdToken = (async () => new Response(JSON.stringify({ access_token: 'a' }), { status: 200 })) as unknown as typeof fetch;
    await expect(exchangeCode({ issuer: ISSUER, code: 'c', verifier: 'v', fetchImpl: noIdToken })).rejects.toThrow(/no ID token/);
    const down = (async () => {
      throw new TypeError('fetch failed');
    }) as unknown as typeof fetch;
    await expect(exchangeCode({ issuer: ISSUER, code: 'c', verifier: 'v', fetchImpl: down })).rejects.toThrow(/could not be reached/);
  });
});

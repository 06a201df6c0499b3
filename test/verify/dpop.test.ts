// gatehouse/verify's sender-constraint checks with tokens and proofs made here (the issuer's key
// in hand, a local JWKS), for the cases a real Gatehouse never produces: odd proof headers,
// confirmation methods it does not issue, the replay cache's limits. The end-to-end cases with a
// real server are in test/oidc/dpop.test.ts and test/oidc/mtls-bound.test.ts.
import crypto from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { checkAuthentication, createVerifier, normalizeHtu, type Verifier } from '../../src/verify/index.ts';
import { ReplayCache } from '../../src/verify/dpop.ts';

const ISSUER = 'https://id.example.com';
const AUDIENCE = 'https://agents.example.com';
const URL_ = 'https://agents.example.com/threads/1';
const now = () => Math.floor(Date.now() / 1000);

let issuerKey: { privateKey: CryptoKey; jwk: JWK };
let holder: { privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK; jkt: string };

async function accessToken(cnf?: unknown): Promise<string> {
  return new SignJWT({ sub: 'svc_a', client_id: 'svc_a', roles: ['viewer'], jti: crypto.randomUUID(), ...(cnf ? { cnf } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(issuerKey.privateKey);
}

async function proof(
  token: string | null,
  opts: { htm?: string; htu?: string; iat?: number; jti?: string; nonce?: string; typ?: string; header?: Record<string, unknown> } = {},
): Promise<string> {
  return new SignJWT({
    htm: opts.htm ?? 'GET',
    htu: opts.htu ?? URL_,
    jti: opts.jti ?? crypto.randomUUID(),
    iat: opts.iat ?? now(),
    ...(token ? { ath: crypto.hash('sha256', token, 'base64url') } : {}),
    ...(opts.nonce ? { nonce: opts.nonce } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: opts.typ ?? 'dpop+jwt', jwk: holder.jwk, ...opts.header })
    .sign(holder.privateKey);
}

let verifier: Verifier;

beforeAll(async () => {
  const issuer = await generateKeyPair('ES256', { extractable: true });
  issuerKey = { privateKey: issuer.privateKey, jwk: { ...(await exportJWK(issuer.publicKey)), kid: 'k1', alg: 'ES256' } };
  const h = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(h.publicKey);
  holder = { ...h, jwk, jkt: await calculateJwkThumbprint(jwk) };
  verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [issuerKey.jwk] } });
});

describe('DPoP proofs (RFC 9449 §4.3)', () => {
  it('accepts a fresh proof for the method, URL and token, and exposes cnf', async () => {
    const token = await accessToken({ jkt: holder.jkt });
    const claims = await verifier.verify(token, { dpop: { proof: await proof(token), method: 'GET', url: URL_ } });
    expect(claims.cnf).toEqual({ jkt: holder.jkt });
  });

  it('compares htu after normalization, without query or fragment', async () => {
    expect(normalizeHtu('HTTPS://Agents.Example.COM:443/threads/1?x=1#y')).toBe(URL_);
    expect(normalizeHtu('https://agents.example.com:8443/a/../threads/1')).toBe('https://agents.example.com:8443/threads/1');
    expect(normalizeHtu('ftp://agents.example.com/')).toBeNull();
    const token = await accessToken({ jkt: holder.jkt });
    const p = await proof(token, { htu: 'https://AGENTS.example.com:443/threads/1' });
    await expect(verifier.verify(token, { dpop: { proof: p, method: 'get', url: `${URL_}?page=2#top` } })).resolves.toBeTruthy();
    const other = await proof(token, { htu: 'https://agents.example.com:8443/threads/1' });
    await expect(verifier.verify(token, { dpop: { proof: other, method: 'GET', url: URL_ } })).rejects.toMatchObject({
      code: 'invalid_dpop_proof',
    });
  });

  it('refuses a proof whose header is wrong: typ, alg, private or missing jwk, two proofs in one header', async () => {
    const token = await accessToken({ jkt: holder.jkt });
    const refuse = async (p: string, code = 'invalid_dpop_proof') =>
      expect(verifier.verify(token, { dpop: { proof: p, method: 'GET', url: URL_ } })).rejects.toMatchObject({ code });
    await refuse(await proof(token, { typ: 'JWT' }));
    await refuse(await proof(token, { typ: 'application/dpop+jwt' }));
    const privateJwk = await exportJWK(holder.privateKey);
    await refuse(await proof(token, { header: { jwk: privateJwk } }));
    await refuse(await proof(token, { header: { jwk: undefined } }));
    // An HMAC proof "signed" with a secret: never an allowed algorithm.
    const secret = crypto.randomBytes(32);
    const hs = await new SignJWT({ htm: 'GET', htu: URL_, jti: 'x', iat: now(), ath: crypto.hash('sha256', token, 'base64url') })
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: base64url.encode(secret) } as JWK })
      .sign(secret);
    await refuse(hs);
    // alg none.
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: holder.jwk }))}.${base64url.encode(
      JSON.stringify({ htm: 'GET', htu: URL_, jti: 'y', iat: now() }),
    )}.`;
    await refuse(none);
    const p = await proof(token);
    await refuse(`${p}, ${p}`);
    // A tampered payload no longer matches the signature.
    const [h, , sig] = p.split('.');
    const forged = base64url.encode(JSON.stringify({ htm: 'POST', htu: URL_, jti: 'z', iat: now(), ath: 'x' }));
    await refuse(`${h}.${forged}.${sig}`);
  });

  it('refuses a proof from the future or past its age, and one without the nonce asked for', async () => {
    const token = await accessToken({ jkt: holder.jkt });
    const dpop = (p: string, nonce?: string) => ({ dpop: { proof: p, method: 'GET', url: URL_, ...(nonce ? { nonce } : {}) } });
    await expect(verifier.verify(token, dpop(await proof(token, { iat: now() + 120 })))).rejects.toMatchObject({
      code: 'invalid_dpop_proof',
    });
    await expect(verifier.verify(token, dpop(await proof(token, { iat: now() - 120 })))).rejects.toMatchObject({
      code: 'invalid_dpop_proof',
    });
    await expect(verifier.verify(token, dpop(await proof(token), 'n-1'))).rejects.toMatchObject({ code: 'use_dpop_nonce' });
    await expect(verifier.verify(token, dpop(await proof(token, { nonce: 'n-1' }), 'n-1'))).resolves.toBeTruthy();
  });

  it('remembers jtis per key for the proof lifetime, and refuses rather than forget when full', async () => {
    const small = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [issuerKey.jwk] }, dpop: { replayCacheSize: 2 } });
    const token = await accessToken({ jkt: holder.jkt });
    const dpop = async (jti: string) => ({ dpop: { proof: await proof(token, { jti }), method: 'GET', url: URL_ } });
    await small.verify(token, await dpop('a'));
    await expect(small.verify(token, await dpop('a'))).rejects.toMatchObject({ code: 'dpop_replay' });
    await small.verify(token, await dpop('b'));
    await expect(small.verify(token, await dpop('c'))).rejects.toMatchObject({ code: 'replay_cache_full' });

    const cache = new ReplayCache(2, 1000);
    expect(cache.add('a', 0)).toBe('new');
    expect(cache.add('a', 999)).toBe('seen');
    expect(cache.add('b', 500)).toBe('new');
    expect(cache.add('c', 600)).toBe('full');
    expect(cache.add('a', 1000)).toBe('new'); // a expired at 1000 and left; its slot is free again
    expect(cache.size).toBe(2);
  });
});

describe('bound tokens are never bearer tokens', () => {
  it('refuses a DPoP-bound token without a proof, and a certificate-bound one without a certificate', async () => {
    await expect(verifier.verify(await accessToken({ jkt: holder.jkt }))).rejects.toMatchObject({ code: 'dpop_proof_required' });
    const x5t = base64url.encode(crypto.randomBytes(32));
    await expect(verifier.verify(await accessToken({ 'x5t#S256': x5t }))).rejects.toMatchObject({ code: 'certificate_required' });
    await expect(verifier.verify(await accessToken({ 'x5t#S256': x5t }), { certificate: x5t })).resolves.toBeTruthy();
  });

  it('refuses a confirmation method it cannot check, and a cnf of the wrong shape', async () => {
    await expect(verifier.verify(await accessToken({ jwk: holder.jwk }))).rejects.toMatchObject({ code: 'unsupported_confirmation' });
    await expect(verifier.verify(await accessToken({ jkt: 'short' }))).rejects.toMatchObject({ code: 'malformed' });
    await expect(verifier.verify(await accessToken(['x']))).rejects.toMatchObject({ code: 'malformed' });
  });

  it('asks for a step-up with the DPoP scheme for a DPoP-bound token', () => {
    const requirement = { acrValues: ['urn:gatehouse:acr:phr'] };
    const dpop = checkAuthentication({ acr: 'urn:gatehouse:acr:mfa', cnf: { jkt: holder.jkt } }, requirement);
    expect(dpop.ok).toBe(false);
    expect(!dpop.ok && dpop.challenge).toMatch(/^DPoP algs="ES256 [^"]*", error="insufficient_user_authentication"/);
    const bearer = checkAuthentication({ acr: 'urn:gatehouse:acr:mfa' }, requirement);
    expect(!bearer.ok && bearer.challenge).toMatch(/^Bearer error="insufficient_user_authentication"/);
  });
});

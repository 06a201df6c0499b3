// verifyLogoutToken (Back-Channel Logout 1.0 §2.6) against tokens made here with jose: what a
// forger or a confused sender could POST to the agentserver's logout endpoint is refused, with a
// stable code. The end-to-end path (Gatehouse signing and delivering) is in
// test/oidc/backchannel-logout.test.ts.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { createVerifier, LOGOUT_EVENT, type Verifier } from '../../src/verify/index.ts';

const ISSUER = 'https://id.example.com';
const CLIENT = 'app_agentserver000000000';

describe('verifyLogoutToken', () => {
  let key: CryptoKey;
  let jwk: JWK;
  let verifier: Verifier;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    verifier = createVerifier({ issuer: ISSUER, audience: 'https://agents.example.com', clientId: CLIENT, jwks: { keys: [jwk] } });
  });

  async function token(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, iat = Math.floor(Date.now() / 1000)) {
    const body: Record<string, unknown> = { events: { [LOGOUT_EVENT]: {} }, sub: 'usr_x', sid: 'sid-1', jti: randomUUID(), ...claims };
    for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
    return new SignJWT(body as never)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'logout+jwt', ...header })
      .setIssuer(ISSUER)
      .setAudience((claims.aud as string) ?? CLIENT)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 120)
      .sign(key);
  }

  it('accepts a well-formed token once, with its sub and sid', async () => {
    const t = await token();
    await expect(verifier.verifyLogoutToken(t)).resolves.toMatchObject({ sub: 'usr_x', sid: 'sid-1', aud: CLIENT });
    await expect(verifier.verifyLogoutToken(t)).rejects.toMatchObject({ code: 'replayed' });
    // sid alone, or sub alone, is enough.
    await expect(verifier.verifyLogoutToken(await token({ sub: undefined }))).resolves.toMatchObject({ sid: 'sid-1' });
    await expect(verifier.verifyLogoutToken(await token({ sid: undefined }))).resolves.toMatchObject({ sub: 'usr_x' });
  });

  it.each([
    ['a nonce (it would pass as an ID token)', { nonce: 'n' }, {}, 'malformed'],
    ['no events claim', { events: undefined }, {}, 'malformed'],
    ['events without the logout member', { events: { 'http://example.com/other': {} } }, {}, 'malformed'],
    ['neither sub nor sid', { sub: undefined, sid: undefined }, {}, 'malformed'],
    ['another client as audience', { aud: 'app_someoneelse' }, {}, 'wrong_audience'],
    ['an ID token header (typ JWT)', {}, { typ: 'JWT' }, 'wrong_type'],
  ] as const)('refuses %s', async (_what, claims, header, code) => {
    await expect(verifier.verifyLogoutToken(await token(claims, header))).rejects.toMatchObject({ code });
  });

  it('refuses a token issued too long ago, and one signed by another key', async () => {
    const old = await token({}, {}, Math.floor(Date.now() / 1000) - 600);
    await expect(verifier.verifyLogoutToken(old)).rejects.toMatchObject({ code: 'expired' });
    const other = await generateKeyPair('RS256');
    const forged = await new SignJWT({ events: { [LOGOUT_EVENT]: {} }, sub: 'usr_x', jti: randomUUID() })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'logout+jwt' })
      .setIssuer(ISSUER)
      .setAudience(CLIENT)
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(other.privateKey);
    await expect(verifier.verifyLogoutToken(forged)).rejects.toMatchObject({ code: 'invalid_signature' });
  });

  it('keeps its replay cache bounded', async () => {
    const small = createVerifier({ issuer: ISSUER, audience: 'x', clientId: CLIENT, jwks: { keys: [jwk] }, logoutReplayCacheSize: 2 });
    const tokens = await Promise.all([token(), token(), token()]);
    for (const t of tokens) await small.verifyLogoutToken(t);
    // The oldest was forgotten to make room; the newest is still remembered.
    await expect(small.verifyLogoutToken(tokens[2]!)).rejects.toMatchObject({ code: 'replayed' });
    await expect(small.verifyLogoutToken(tokens[0]!)).resolves.toBeTruthy();
  });

  it('needs the clientId option', async () => {
    const plain = createVerifier({ issuer: ISSUER, audience: 'x', jwks: { keys: [jwk] } });
    await expect(plain.verifyLogoutToken(await token())).rejects.toBeInstanceOf(TypeError);
  });
});

// Rotation must never show a verifier a token whose kid it cannot find: the next key is in the
// JWKS before it signs, and the retired key stays there until its tokens have expired.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { BACKENDS } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { rotateKeys, rotateIfDue, listKeys } from '../../src/keys/keys.service.ts';
import { createVerifier } from '../../src/verify/index.ts';

const AUDIENCE = 'https://agents.example.com';

async function token(s: TestServer, id: string, secret: string): Promise<string> {
  const res = await fetch(`${s.url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as any).access_token;
}

async function waitFor<T>(fn: () => Promise<T | undefined>, what: string): Promise<T> {
  // Bounded: the change feed polls every 200 ms in tests.
  for (let i = 0; i < 100; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe.each(BACKENDS)('signing key rotation on %s', (backend) => {
  let s: TestServer;
  let client: { client_id: string; client_secret?: string };

  beforeAll(async () => {
    s = await startServer(backend, { GATEHOUSE_JWKS_MAX_AGE: '1' });
    client = await createClient(s.gatehouse.db.kysely, { name: 'svc', grants: ['client_credentials'], roles: ['viewer'] });
  });
  afterAll(() => s?.close());

  it('refuses to promote a next key that verifiers may not have seen yet', async () => {
    const policy = { ...s.gatehouse.keyPolicy, jwksMaxAgeSeconds: 3600 };
    await expect(rotateKeys(s.gatehouse.db.kysely, s.gatehouse.sealer, policy)).rejects.toMatchObject({ code: 'KEY_ROTATION_TOO_SOON' });
    const states = (await listKeys(s.gatehouse.db.kysely)).map((k) => k.state).sort();
    expect(states).toEqual(['current', 'current', 'next', 'next']);
  });

  it('rotates without breaking a verifier that cached the JWKS before the rotation', async () => {
    const before = await token(s, client.client_id, client.client_secret!);
    const cachedJwks = (await (await fetch(`${s.url}/jwks`)).json()) as JSONWebKeySet;
    const oldKid = decodeProtectedHeader(before).kid;
    const nextKid = (await listKeys(s.gatehouse.db.kysely)).find((k) => k.state === 'next' && k.alg === 'ES256')!.kid;
    expect(cachedJwks.keys.map((k) => k.kid)).toContain(nextKid);

    await new Promise((r) => setTimeout(r, 1100)); // the next key has now been published longer than max-age
    const rotated = await rotateKeys(s.gatehouse.db.kysely, s.gatehouse.sealer, s.gatehouse.keyPolicy);
    expect(rotated.find((r) => r.alg === 'ES256')).toMatchObject({ retired: oldKid, current: nextKid });

    // Every instance picks the change up from the database.
    const after = await waitFor(async () => {
      const t = await token(s, client.client_id, client.client_secret!);
      return decodeProtectedHeader(t).kid === nextKid ? t : undefined;
    }, 'the new key to sign');

    // A verifier holding the JWKS from before the rotation verifies the new token...
    const stale = createLocalJWKSet(cachedJwks);
    await expect(jwtVerify(after, stale, { issuer: s.url, audience: AUDIENCE, typ: 'at+jwt' })).resolves.toBeTruthy();
    // ...and one with a fresh JWKS still verifies the token signed before it.
    const fresh = createVerifier({ issuer: s.url, audience: AUDIENCE });
    await expect(fresh.verify(before)).resolves.toMatchObject({ sub: client.client_id });
    const published = ((await (await fetch(`${s.url}/jwks`)).json()) as JSONWebKeySet).keys.map((k) => k.kid);
    expect(published).toContain(oldKid);
    expect(published).toContain(nextKid);
    // A new next key is published at once, ready for the following rotation.
    const newNext = rotated.find((r) => r.alg === 'ES256')!.next;
    expect(published).toContain(newNext);
  });

  it('rotates automatically when the current key is older than the interval', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const policy = s.gatehouse.keyPolicy;
    expect(await rotateIfDue(s.gatehouse.db.kysely, s.gatehouse.sealer, policy, 3600)).toEqual([]);
    const done = await rotateIfDue(s.gatehouse.db.kysely, s.gatehouse.sealer, policy, 1);
    expect(done.map((r) => r.alg).sort()).toEqual(['ES256', 'RS256']);
  });

  it('keeps private keys sealed in the database', async () => {
    const rows = await s.gatehouse.db.kysely.selectFrom('signing_key').selectAll().execute();
    for (const row of rows) {
      expect(row.private_jwk_sealed).toMatch(/^v1\./);
      expect(row.private_jwk_sealed).not.toContain('"d"');
      expect(JSON.stringify(row.public_jwk)).not.toContain('"d"');
    }
  });
});

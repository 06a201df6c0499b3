// Issue 7 point 4: a compromised signing key is withdrawn at once. Attack: a token signed with
// the key (as whoever stole it would mint) must stop verifying through gatehouse/verify as soon
// as a verifier fetches the JWKS, on every instance; the stored next key is not promoted.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import { BACKENDS, createPgDatabase } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { formField } from '../helpers/http-signin.ts';
import { adminOverHttp } from '../helpers/people.ts';
import { gatehouse } from '../helpers/cli.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { listKeys } from '../../src/keys/keys.service.ts';
import { revokeKey } from '../../src/keys/revoke.ts';
import { listAudit } from '../../src/audit/query.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { createVerifier, VerifyError } from '../../src/verify/index.ts';

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

const jwksKids = async (s: TestServer) => ((await (await fetch(`${s.url}/jwks`)).json()) as JSONWebKeySet).keys.map((k) => k.kid);

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  // Bounded: the change feed polls every 200 ms in tests.
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** A verifier as the agentserver builds one, with nothing cached: it fetches the JWKS now. */
const freshVerifier = (s: TestServer) => createVerifier({ issuer: s.url, audience: AUDIENCE });

describe.each(BACKENDS)('revoking a compromised signing key from the console on %s', (backend) => {
  let s: TestServer;
  let owner: TestPerson;
  let client: { client_id: string; client_secret?: string };

  beforeAll(async () => {
    s = await startServer(backend, { GATEHOUSE_JWKS_MAX_AGE: '1' });
    owner = await createPerson(s, 'owner@example.com', 'owner');
    client = await createClient(s.gatehouse.db.kysely, { name: 'svc', grants: ['client_credentials'], roles: ['viewer'] });
  });
  afterAll(() => s?.close());

  it('withdraws the key from /jwks, replaces it with a fresh key, and tokens it signed stop verifying', async () => {
    const db = s.gatehouse.db.kysely;
    const stolen = await token(s, client.client_id, client.client_secret!);
    const kid = decodeProtectedHeader(stolen).kid!;
    await expect(freshVerifier(s).verify(stolen)).resolves.toMatchObject({ sub: client.client_id });
    const storedNext = (await listKeys(db)).find((k) => k.alg === 'ES256' && k.state === 'next')!.kid;

    const { agent, landed } = await adminOverHttp(s, owner);
    const page = await agent.request('/admin/keys');
    expect(page.text).toContain(`aria-label="Revoke key ${kid}"`);
    // Without the CSRF token nothing happens.
    expect((await agent.request('/admin/keys/revoke', { form: { kid } })).status).toBe(403);
    expect((await listKeys(db)).find((k) => k.kid === kid)!.state).toBe('current');

    const r = await agent.request('/admin/keys/revoke', { form: { _csrf: formField(landed.text, '_csrf')!, kid } });
    expect(r.status).toBe(303);
    expect(r.location).toBe('/admin/keys?done=key_revoked');

    const keys = await listKeys(db);
    expect(keys.find((k) => k.kid === kid)).toMatchObject({ state: 'revoked', published_until: null });
    const current = keys.find((k) => k.alg === 'ES256' && k.state === 'current')!;
    // A fresh key, not the stored next one promoted; the next key (not revoked) stays.
    expect(current.kid).not.toBe(storedNext);
    expect(keys.find((k) => k.alg === 'ES256' && k.state === 'next')!.kid).toBe(storedNext);
    const row = await db.selectFrom('signing_key').select('private_jwk_sealed').where('kid', '=', kid).executeTakeFirstOrThrow();
    expect(row.private_jwk_sealed).toBe('');

    // Audited with the change, by the owner, naming the key.
    const e = (await listAudit(db, { action: 'key.revoke', limit: 1 })).events[0]!;
    expect(e).toMatchObject({ outcome: 'success', actor: owner.id, target: kid, requestId: r.headers.get('x-request-id') });
    expect(e.details).toMatchObject({ alg: 'ES256', revoked: [kid], current: current.kid, all: false });

    await eventually(async () => !(await jwksKids(s)).includes(kid), 'the revoked kid to leave /jwks');
    const err = await freshVerifier(s)
      .verify(stolen)
      .catch((x: unknown) => x);
    expect(err).toBeInstanceOf(VerifyError);

    // New tokens are signed by the fresh key and verify.
    await eventually(
      async () => decodeProtectedHeader(await token(s, client.client_id, client.client_secret!)).kid === current.kid,
      'new key',
    );
    const fresh = await token(s, client.client_id, client.client_secret!);
    await expect(freshVerifier(s).verify(fresh)).resolves.toMatchObject({ sub: client.client_id });
  });

  it('with "every key", replaces current and next and withdraws retired ones; a revoked key cannot be revoked again', async () => {
    const db = s.gatehouse.db.kysely;
    const before = (await listKeys(db)).filter((k) => k.alg === 'ES256' && k.state !== 'revoked').map((k) => k.kid);
    const next = (await listKeys(db)).find((k) => k.alg === 'ES256' && k.state === 'next')!.kid;
    const result = await revokeKey(db, s.gatehouse.sealer, s.gatehouse.keyPolicy, { kid: next, all: true });
    expect(result.revoked.sort()).toEqual([...before].sort());
    for (const kid of [result.current, result.next]) expect(before).not.toContain(kid);
    await eventually(async () => (await jwksKids(s)).every((k) => !before.includes(k!)), 'every old ES256 kid to leave /jwks');
    await expect(revokeKey(db, s.gatehouse.sealer, s.gatehouse.keyPolicy, { kid: next })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(revokeKey(db, s.gatehouse.sealer, s.gatehouse.keyPolicy, { kid: 'no-such-kid' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    // The RS256 keys (ID tokens) were not touched.
    expect((await listKeys(db)).filter((k) => k.alg === 'RS256' && k.state === 'revoked')).toEqual([]);
  });
});

describe('revoking on one instance of two sharing PostgreSQL, from the command line', () => {
  const servers: TestServer[] = [];
  let drop: () => Promise<void> = async () => {};
  afterAll(async () => {
    for (const s of servers) await s.gatehouse.close();
    await drop();
  });

  it('the other instance drops the kid from its JWKS within seconds and stops signing with it', async () => {
    const pgdb = await createPgDatabase();
    drop = pgdb.drop;
    const masterKey = crypto.randomBytes(32).toString('base64');
    for (let i = 0; i < 2; i++) {
      const db = await openDatabase({ databaseUrl: pgdb.url, dataDir: '' });
      servers.push(
        await startServer(
          'postgres',
          { GATEHOUSE_MASTER_KEY: masterKey, DATABASE_URL: pgdb.url },
          { testDb: { db, url: null, drop: async () => {} } },
        ),
      );
    }
    const [a, b] = servers as [TestServer, TestServer];
    const client = await createClient(a.gatehouse.db.kysely, { name: 'svc', grants: ['client_credentials'], roles: ['viewer'] });
    let stolen = '';
    await eventually(async () => {
      const res = await fetch(`${b.url}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
        },
        body: 'grant_type=client_credentials',
      });
      if (res.status === 200) stolen = ((await res.json()) as any).access_token;
      return res.status === 200;
    }, 'the client to reach the second instance');
    const kid = decodeProtectedHeader(stolen).kid!;
    expect(await jwksKids(b)).toContain(kid);

    const out = await gatehouse(['keys', 'revoke', '--kid', kid, '--json'], a.env);
    expect(out.code, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout);
    expect(result).toMatchObject({ ok: true, alg: 'ES256', revoked: [kid] });
    const e = (await listAudit(a.gatehouse.db.kysely, { action: 'key.revoke', limit: 1 })).events[0]!;
    expect(e).toMatchObject({ outcome: 'success', actor: 'cli', target: kid });

    await eventually(async () => !(await jwksKids(b)).includes(kid), 'the second instance to drop the kid');
    await expect(freshVerifier(b).verify(stolen)).rejects.toBeInstanceOf(VerifyError);
    await eventually(
      async () => decodeProtectedHeader(await token(b, client.client_id, client.client_secret!)).kid === result.current,
      'b signs with the fresh key',
    );
    // Both instances publish the same key set: a's JWKS verifies what b signs (each has its own issuer here).
    const viaA = createVerifier({ issuer: b.url, audience: AUDIENCE, jwksUri: `${a.url}/jwks` });
    await expect(viaA.verify(await token(b, client.client_id, client.client_secret!))).resolves.toBeTruthy();

    // Operator mistakes are refused with exit code 2 and change nothing.
    expect((await gatehouse(['keys', 'revoke', '--kid', kid], a.env)).code).toBe(2);
    expect((await gatehouse(['keys', 'revoke', '--kid', 'unknown'], a.env)).code).toBe(2);
    expect((await gatehouse(['keys', 'revoke'], a.env)).code).toBe(2);
  });
});

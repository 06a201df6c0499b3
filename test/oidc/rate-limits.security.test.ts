// Issue 7 §7 and §8, attacked over HTTP: a client over its token budget, a flood of
// unauthenticated failures from one address (and from one IPv6 /64), a client outside its
// allowed networks at introspection and revocation, the audit rows each leaves, and the bounded
// audit queue.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.service.ts';
import { addressKey } from '../../src/http/address-key.ts';
import { ADDRESS_FAILURES_PER_MINUTE } from '../../src/http/rate-limits.ts';
import { BACKENDS } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

function post(s: TestServer, path: string, auth: string, body: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(new URL(path, s.url), {
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
}

const token = (s: TestServer, id: string, secret: string, headers: Record<string, string> = {}) =>
  post(s, '/token', basic(id, secret), { grant_type: 'client_credentials' }, headers);

async function service(s: TestServer, extra: { rateLimit?: number; allowedCidrs?: string[] } = {}) {
  const c = await createClient(s.gatehouse.db.kysely, { name: 'svc', grants: ['client_credentials'], roles: ['viewer'], ...extra });
  return { id: c.client_id, secret: c.client_secret! };
}

async function auditRows(s: TestServer, action: string) {
  await s.gatehouse.auditQueue.flush();
  return s.gatehouse.db.kysely.selectFrom('audit_event').selectAll().where('action', '=', action).orderBy('seq').execute();
}

/** Failed requests from one address until one answers 429; returns how many were answered before it. */
async function floodUntilRefused(send: () => Promise<Response>, max: number): Promise<{ before: number; refused: Response }> {
  for (let i = 0; i < max; i++) {
    const res = await send();
    if (res.status === 429) return { before: i, refused: res };
    expect(res.status).toBeLessThan(500);
  }
  throw new Error(`no 429 after ${max} failures`);
}

async function expectTooMany(res: Response) {
  expect(res.status).toBe(429);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(Number(res.headers.get('retry-after'))).toBeLessThanOrEqual(60);
  expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/retry after/) });
}

describe.each(BACKENDS)('rate limits on %s', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer(backend, { GATEHOUSE_TRUST_PROXY: 'true' });
  });
  afterAll(() => s?.close());

  it('gives a client over its --rate-limit 429 with Retry-After in the OAuth shape, and audits the trip once', async () => {
    const c = await service(s, { rateLimit: 3 });
    const from = { 'x-forwarded-for': '198.51.100.1' };
    for (let i = 0; i < 3; i++) expect((await token(s, c.id, c.secret, from)).status).toBe(200);
    for (let i = 0; i < 4; i++) await expectTooMany(await token(s, c.id, c.secret, from));
    const trips = (await auditRows(s, 'ratelimit.trip')).filter((r) => r.target === c.id);
    expect(trips).toHaveLength(1);
    expect(trips[0]).toMatchObject({ actor: c.id, outcome: 'denied', details: { scope: 'client', endpoint: 'token', limit: 3 } });
  });

  it('gives exactly the limit when the budget is taken in leases asked for ahead, and audits the trip once', async () => {
    const c = await service(s, { rateLimit: 300 });
    const statuses: number[] = [];
    for (let i = 0; i < 320; i++) statuses.push((await token(s, c.id, c.secret, { 'x-forwarded-for': '198.51.100.9' })).status);
    expect(statuses.filter((x) => x === 200)).toHaveLength(300);
    expect(statuses.slice(300).every((x) => x === 429)).toBe(true);
    expect((await auditRows(s, 'ratelimit.trip')).filter((r) => r.target === c.id)).toHaveLength(1);
  });

  it('does not let wrong secrets spend a client budget', async () => {
    const c = await service(s, { rateLimit: 2 });
    for (let i = 0; i < 5; i++) expect((await token(s, c.id, 'wrong', { 'x-forwarded-for': '198.51.100.2' })).status).toBe(401);
    expect((await token(s, c.id, c.secret, { 'x-forwarded-for': '198.51.100.3' })).status).toBe(200);
  });

  it('limits a flood of unauthenticated failures from one address at every endpoint, audited once', async () => {
    const c = await service(s);
    const from = { 'x-forwarded-for': '203.0.113.7' };
    const endpoints = [
      () => token(s, c.id, 'wrong secret', from),
      () => fetch(new URL('/enroll/not-an-invitation', s.url), { headers: from }),
      () => post(s, '/token/introspection', basic('svc_unknown', 'x'), { token: 'x' }, from),
      () => post(s, '/token/revocation', basic('svc_unknown', 'x'), { token: 'x' }, from),
      () => fetch(new URL('/auth?client_id=app_unknown&response_type=code&scope=openid', s.url), { headers: from }),
    ];
    let n = 0;
    const { before, refused } = await floodUntilRefused(() => endpoints[n++ % endpoints.length]!(), ADDRESS_FAILURES_PER_MINUTE + 10);
    expect(before).toBeGreaterThanOrEqual(ADDRESS_FAILURES_PER_MINUTE);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    // Blocked now at every limited endpoint, the right secret included, on the fast path too.
    await expectTooMany(await token(s, c.id, c.secret, from));
    await expectTooMany(await post(s, '/token/introspection', basic(c.id, c.secret), { token: 'x' }, from));
    expect((await fetch(new URL('/enroll/x', s.url), { headers: from })).status).toBe(429);
    // Another address is not.
    expect((await token(s, c.id, c.secret, { 'x-forwarded-for': '203.0.113.8' })).status).toBe(200);

    const trips = (await auditRows(s, 'ratelimit.trip')).filter((r) => (r.details as any).scope === 'address' && r.ip === '203.0.113.7');
    expect(trips).toHaveLength(1);
    expect(trips[0]!.details).toMatchObject({ address: '203.0.113.7', limit: ADDRESS_FAILURES_PER_MINUTE });
  });

  it('counts an IPv6 /64 as one address', async () => {
    const c = await service(s);
    let i = 0;
    const { before } = await floodUntilRefused(
      () => token(s, c.id, 'wrong', { 'x-forwarded-for': `2001:db8:7:9:${(++i).toString(16)}::1` }),
      ADDRESS_FAILURES_PER_MINUTE + 10,
    );
    expect(before).toBeGreaterThanOrEqual(ADDRESS_FAILURES_PER_MINUTE);
    await expectTooMany(await token(s, c.id, c.secret, { 'x-forwarded-for': '2001:db8:7:9:ffff:1:2:3' }));
    expect((await token(s, c.id, c.secret, { 'x-forwarded-for': '2001:db8:7:a::1' })).status).toBe(200);
  });

  it('enforces allowed networks at introspection and revocation, not only at /token', async () => {
    const outside = await service(s, { allowedCidrs: ['10.0.0.0/8'] });
    const inside = await service(s, { allowedCidrs: ['192.0.2.0/24'] });
    const from = { 'x-forwarded-for': '192.0.2.10' };
    // An opaque value: access tokens are JWTs, which oidc-provider does not introspect.
    const opaque = { token: 'an-opaque-token-value' };
    for (const path of ['/token/introspection', '/token/revocation']) {
      const refused = await post(s, path, basic(outside.id, outside.secret), opaque, from);
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ error: 'invalid_client' });
      expect((await post(s, path, basic(inside.id, inside.secret), opaque, from)).status).toBe(200);
    }
    expect((await token(s, outside.id, outside.secret, from)).status).toBe(401);
  });

  it('audits client-authentication failures at /token per client and minute, not per request', async () => {
    const c = await service(s);
    await s.gatehouse.authFailures.flush();
    for (let i = 0; i < 6; i++) await token(s, c.id, 'wrong', { 'x-forwarded-for': '198.51.100.40' });
    for (let i = 0; i < 3; i++) await token(s, `svc_madeup${i}`, 'wrong', { 'x-forwarded-for': '198.51.100.41' });
    await s.gatehouse.authFailures.flush();
    const rows = await auditRows(s, 'client.auth_failure');
    const mine = rows.filter((r) => r.target === c.id);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.details).toMatchObject({ endpoint: 'token', failures: 6, addresses: ['198.51.100.40'] });
    const unknown = rows.filter((r) => r.target === null);
    expect(unknown.at(-1)!.details).toMatchObject({ failures: 3, unknown_client: true });
  });
});

describe('rate limits shared by two instances on postgres', () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await startServer('postgres');
    b = await startServer('postgres', { GATEHOUSE_MASTER_KEY: a.env.GATEHOUSE_MASTER_KEY! }, { testDb: a.testDb });
  });
  afterAll(async () => {
    await b?.gatehouse.close();
    await a?.close();
  });

  it('counts one client budget across instances', async () => {
    const c = await service(a, { rateLimit: 4 });
    await b.gatehouse.refresh();
    for (const s of [a, a, b, b]) expect((await token(s, c.id, c.secret)).status).toBe(200);
    await expectTooMany(await token(a, c.id, c.secret));
    await expectTooMany(await token(b, c.id, c.secret));
    const trips = (await auditRows(a, 'ratelimit.trip')).filter((r) => r.target === c.id);
    await b.gatehouse.auditQueue.flush();
    expect((await auditRows(a, 'ratelimit.trip')).filter((r) => r.target === c.id)).toHaveLength(trips.length);
    expect(trips.length).toBe(1);
  });
  it('never lets more than the limit through when two instances are hit in parallel, and audits the trip once', async () => {
    const c = await service(a, { rateLimit: 40 });
    await b.gatehouse.refresh();
    const answers = await Promise.all(Array.from({ length: 120 }, (_, i) => token(i % 2 ? a : b, c.id, c.secret)));
    const issued = answers.filter((r) => r.status === 200).length;
    expect(answers.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    expect(issued).toBeLessThanOrEqual(40);
    // Leases are a share of what is left, so at most a few points are lost at the edge.
    expect(issued).toBeGreaterThanOrEqual(30);
    await b.gatehouse.auditQueue.flush();
    expect((await auditRows(a, 'ratelimit.trip')).filter((r) => r.target === c.id)).toHaveLength(1);
  });

  it('takes the budget from the shared counter in leases, not one write per token', async () => {
    const c = await service(a, { rateLimit: 1000 });
    for (let i = 0; i < 10; i++) expect((await token(a, c.id, c.secret)).status).toBe(200);
    const row = await a.gatehouse.db.kysely
      .selectFrom('rate_limit')
      .select('points')
      .where('key', '=', `token_client:${c.id}`)
      .executeTakeFirstOrThrow();
    // The first token took one point (to learn the count), the second a lease of 64 that covers the other eight.
    expect(row.points).toBe(1 + 64);
  });
});

describe('bounded audit queue on postgres', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('postgres', {}, { auditQueueMax: 3 });
  });
  afterAll(() => s?.close());

  it('answers 503 with Retry-After to requests that must be audited while the queue is full', async () => {
    // Another session holds the append lock: the queue's first batch waits on it, the rest pile up.
    const holder = new pg.Client({ connectionString: s.testDb.url! });
    await holder.connect();
    await holder.query('begin');
    await holder.query(`select pg_advisory_xact_lock(hashtext('gatehouse.audit'))`);
    const event = { action: 'session.end' as const, outcome: 'success' as const, actor: 'system' };
    const waiting = [s.gatehouse.auditQueue.append(event)];
    await new Promise((r) => setTimeout(r, 100)); // the first batch is in flight
    for (let i = 0; i < 3; i++) waiting.push(s.gatehouse.auditQueue.append(event));
    expect(s.gatehouse.auditQueue.full).toBe(true);
    await expect(s.gatehouse.auditQueue.append(event)).rejects.toMatchObject({ code: 'UNAVAILABLE' });

    const refused = await fetch(new URL('/interaction/whatever/password', s.url), {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'email=a%40example.com&password=x',
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(await refused.json()).toMatchObject({ error: 'temporarily_unavailable' });

    await holder.query('commit');
    await holder.end();
    await Promise.all(waiting);
    expect(s.gatehouse.auditQueue.full).toBe(false);
    const after = await fetch(new URL('/interaction/whatever/password', s.url), {
      method: 'POST',
      headers: { accept: 'application/json' },
    });
    expect(after.status).not.toBe(503);
  });
});

describe('limiter keys', () => {
  it('groups IPv6 by /64 and keeps IPv4 (mapped or not) whole', () => {
    expect(addressKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::1')).toBe(addressKey('2001:db8:1:2:ffff::9'));
    expect(addressKey('2001:db8:1:3::1')).not.toBe(addressKey('2001:db8:1:2::1'));
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
  });
});

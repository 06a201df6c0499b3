// The production topology, on loopback (README, "Production topology"): a private PostgreSQL,
// PgBouncer in transaction pooling mode in front of it, two Gatehouse instances (`node src/main.ts`)
// on PgBouncer with GATEHOUSE_TRUST_PROXY on, and HAProxy with deploy/haproxy.cfg terminating TLS
// 1.3 and routing on GET /readyz. Every client request goes through HAProxy only. The instances'
// own ports are read only for what an operator reads there (/metrics).
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPersonIn, type TestPerson } from '../helpers/accounts.ts';
import { formField, HttpAgent } from '../helpers/http-signin.ts';
import { createPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.ts';
import { freePort } from '../helpers/server.ts';
import {
  makeCertificate,
  requireBinary,
  startHaproxy,
  startInstance,
  startPgBouncer,
  tlsFetch,
  type Fetch,
  type Haproxy,
  type Instance,
  type PgBouncer,
} from '../helpers/topology.ts';

const REDIRECT = 'https://app.example.com/callback';
/** A client address other than the proxy's own (HAProxy reaches the instances from 127.0.0.1). */
const CLIENT_ADDRESS = '127.0.0.2';
type Client = { client_id: string; client_secret?: string };

describe('the production topology: HAProxy (TLS 1.3), two instances, PgBouncer (transaction mode), PostgreSQL', () => {
  let dir: string;
  let pg: PrivatePostgres;
  let bouncer: PgBouncer;
  let proxy: Haproxy;
  let ca: string;
  let issuer: string;
  let env: Record<string, string>;
  const ports: [number, number] = [0, 0];
  const instances: [Instance | null, Instance | null] = [null, null];
  let service: Client;
  let fenced: Client;
  let proxyFenced: Client;
  let app: Client;
  let person: TestPerson;
  let fromClient: Fetch;

  const basic = (c: Client) => `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}`;
  const form = (c: Client, params: Record<string, string>, headers: Record<string, string> = {}) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(c), ...headers },
    body: new URLSearchParams(params).toString(),
  });
  const token = (c: Client, params: Record<string, string>, f: Fetch = fromClient, headers: Record<string, string> = {}) =>
    f(`${issuer}/token`, form(c, params, headers));
  const challenge = (v: string) => crypto.createHash('sha256').update(v).digest('base64url');

  /** A full sign-in without a browser (password + TOTP), then the code exchange with PKCE. */
  async function signIn(): Promise<{ access_token: string; refresh_token: string }> {
    const agent = new HttpAgent(issuer, fromClient);
    const verifier = crypto.randomBytes(32).toString('base64url');
    const q = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: 'openid offline_access',
      prompt: 'consent',
      redirect_uri: REDIRECT,
      state: 's',
      code_challenge: challenge(verifier),
      code_challenge_method: 'S256',
    });
    const page = await agent.follow(await agent.request(`/auth?${q}`));
    expect(page.status, page.text).toBe(200);
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    const second = await agent.follow(
      await agent.request(`/interaction/${uid}/login`, {
        form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: person.password },
      }),
    );
    expect(second.status, second.text).toBe(200);
    const back = await agent.follow(
      await agent.request(`/interaction/${uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code: await person.nextCode() } }),
    );
    expect(back.location ?? `${back.status} ${back.text}`).toMatch(/^https:\/\/app\.example\.com\/callback\?/);
    const code = new URL(back.location!).searchParams.get('code')!;
    const res = await token(app, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as { access_token: string; refresh_token: string };
  }

  async function introspect(accessToken: string): Promise<{ active: boolean }> {
    const res = await fromClient(`${issuer}/token/introspection`, form(app, { token: accessToken }));
    expect(res.status).toBe(200);
    return (await res.json()) as { active: boolean };
  }

  /** What an operator reads on an instance's own port: client-credentials tokens it issued. */
  async function issuedBy(i: 0 | 1): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${ports[i]}/metrics`)).text();
    return Number(/gatehouse_tokens_issued_total\{grant_type="client_credentials"\} (\d+)/.exec(text)?.[1] ?? 0);
  }

  /**
   * A steady token load through the proxy: four clients, each on its own keep-alive connection,
   * one client-credentials request after another. Every answer but a 200 with a token is a failure.
   */
  function steadyLoad() {
    const results = { ok: 0, failures: [] as Array<{ at: number; what: string }> };
    let sending = true;
    const loops = Array.from({ length: 4 }, async () => {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
      const f = tlsFetch({ ca, agent });
      while (sending) {
        try {
          const res = await token(service, { grant_type: 'client_credentials' }, f);
          const body = await res.text();
          if (res.status === 200 && JSON.parse(body).access_token) results.ok++;
          else results.failures.push({ at: Date.now(), what: `${res.status} ${body.slice(0, 200)}` });
        } catch (err) {
          results.failures.push({ at: Date.now(), what: (err as Error).message });
        }
      }
      agent.destroy();
    });
    return {
      results,
      async until(n: number) {
        const target = results.ok + n;
        const deadline = Date.now() + 20_000;
        while (results.ok < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        expect(results.ok, JSON.stringify(results.failures.slice(0, 5))).toBeGreaterThanOrEqual(target);
      },
      async stop() {
        sending = false;
        await Promise.all(loops);
      },
    };
  }

  /** Every instance started, killed ones included, for their logs. */
  const started: Instance[] = [];
  const startGatehouse = (i: 0 | 1) =>
    startInstance(ports[i], env).then((g) => {
      started.push(g);
      return (instances[i] = g);
    });

  beforeAll(async () => {
    // Missing binaries fail here, naming the package; the test is never skipped.
    requireBinary('/usr/sbin/pgbouncer', 'pgbouncer');
    requireBinary('/usr/sbin/haproxy', 'haproxy');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-topology-'));
    pg = await createPrivatePostgres();
    bouncer = await startPgBouncer(pg.port);

    // Migrations and the test's clients and person go through the pooler as well.
    const masterKey = crypto.randomBytes(32).toString('base64');
    const setup = await openDatabase({ databaseUrl: bouncer.url, dataDir: '' });
    await migrateToLatest(setup);
    service = await createClient(setup.kysely, { name: 'steady-service', grants: ['client_credentials'], rateLimit: 100_000 });
    fenced = await createClient(setup.kysely, {
      name: 'fenced-service',
      grants: ['client_credentials'],
      allowedCidrs: [`${CLIENT_ADDRESS}/32`],
    });
    proxyFenced = await createClient(setup.kysely, {
      name: 'proxy-address-service',
      grants: ['client_credentials'],
      allowedCidrs: ['127.0.0.1/32'],
    });
    app = await createClient(setup.kysely, { name: 'app', grants: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT] });
    person = await createPersonIn(setup.kysely, masterKey, 'ada@example.com', 'viewer');
    await setup.close();

    const cert = await makeCertificate(dir);
    ca = cert.cert;
    fromClient = tlsFetch({ ca, localAddress: CLIENT_ADDRESS });
    const proxyPort = await freePort();
    issuer = `https://localhost:${proxyPort}`;
    ports[0] = await freePort();
    ports[1] = await freePort();
    env = {
      GATEHOUSE_ISSUER: issuer,
      GATEHOUSE_AUDIENCE: 'https://agents.example.com',
      GATEHOUSE_MASTER_KEY: masterKey,
      DATABASE_URL: bouncer.url,
      GATEHOUSE_TRUST_PROXY: 'true',
      GATEHOUSE_DRAIN_SECONDS: '2',
      LOG_LEVEL: 'info',
    };
    await Promise.all([startGatehouse(0), startGatehouse(1)]);
    proxy = await startHaproxy(dir, {
      port: proxyPort,
      bundle: cert.bundle,
      servers: [instances[0]!.address, instances[1]!.address],
      checkInter: '200ms',
    });
    await proxy.waitStatus('gatehouse-1', 'UP');
    await proxy.waitStatus('gatehouse-2', 'UP');
  }, 300_000);

  afterAll(async () => {
    await proxy?.stop();
    for (const g of instances) await g?.stop();
    await bouncer?.stop();
    await pg?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('client credentials, code + PKCE, refresh and introspection work through TLS 1.3, on both instances', async () => {
    // TLS 1.3 only: a client limited to TLS 1.2 is refused by the proxy.
    const tls12 = await tlsFetch({ ca, agent: new https.Agent({ ca, maxVersion: 'TLSv1.2' }) })(`${issuer}/readyz`).catch(
      (err: Error) => err,
    );
    expect(tls12).toBeInstanceOf(Error);

    const before = [await issuedBy(0), await issuedBy(1)];
    for (let i = 0; i < 6; i++) {
      const res = await token(service, { grant_type: 'client_credentials' });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(((await res.json()) as { access_token: string }).access_token.split('.')).toHaveLength(3);
    }
    // Round robin: both instances issued some.
    expect(await issuedBy(0)).toBeGreaterThan(before[0]!);
    expect(await issuedBy(1)).toBeGreaterThan(before[1]!);

    // A sign-in's requests alternate between the instances: its state lives in the database.
    const first = await signIn();
    expect(await introspect(first.access_token)).toMatchObject({ active: true });
    const refreshed = await token(app, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
    const second = (await refreshed.json()) as { access_token: string; refresh_token: string };
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(await introspect(second.access_token)).toMatchObject({ active: true });
    // The rotated-out refresh token is spent.
    expect((await token(app, { grant_type: 'refresh_token', refresh_token: first.refresh_token })).status).toBe(400);
  });

  it('sees the client address, not the proxy one: allowed networks and the audit log', async () => {
    // Allowed from 127.0.0.2 only: the client at 127.0.0.2 gets a token through the proxy, whose
    // own address is 127.0.0.1; a client at 127.0.0.1 does not.
    expect((await token(fenced, { grant_type: 'client_credentials' })).status).toBe(200);
    const fromProxyHost = tlsFetch({ ca, localAddress: '127.0.0.1' });
    expect((await token(fenced, { grant_type: 'client_credentials' }, fromProxyHost)).status).toBe(401);
    // Allowed from the proxy's address only: refused to the client, even when it claims that
    // address in its own X-Forwarded-For (only the entry HAProxy appended counts).
    expect((await token(proxyFenced, { grant_type: 'client_credentials' })).status).toBe(401);
    const forged = await token(proxyFenced, { grant_type: 'client_credentials' }, fromClient, { 'x-forwarded-for': '127.0.0.1' });
    expect(forged.status).toBe(401);

    // The sign-ins of the previous test were audited with the client's address.
    const direct = await openDatabase({ databaseUrl: pg.url, dataDir: '' });
    try {
      const { rows } = await sql<{ ip: string | null }>`select ip from audit_event where action = 'signin.success'`.execute(direct.kysely);
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) expect(row.ip).toMatch(/(^|:)127\.0\.0\.2$/);
    } finally {
      await direct.close();
    }
  });

  it('SIGTERM to an instance under a steady token load fails no request', async () => {
    const load = steadyLoad();
    await load.until(20);
    const issuedBefore = await issuedBy(1);
    const a = instances[0]!;
    a.proc.kill('SIGTERM');
    const okAtSignal = load.results.ok;
    // Draining: HAProxy sees /readyz at 503 and takes it out while it still serves.
    await proxy.waitStatus('gatehouse-1', 'DOWN');
    expect(await a.exited).toBe(0);
    instances[0] = null;
    await load.until(20); // and the load goes on, on the other instance
    await load.stop();

    expect(load.results.failures).toEqual([]);
    expect(load.results.ok).toBeGreaterThan(okAtSignal);
    expect(await issuedBy(1)).toBeGreaterThan(issuedBefore);
    expect(a.output()).toMatch(/draining, then shutting down/);
  });

  it('SIGKILL to an instance: no failure once HAProxy marks it down; its refresh tokens refresh through the other', async () => {
    // The first slot stays in maintenance while its instance restarts: this refresh token is
    // certainly issued through the second instance.
    await proxy.admin('disable server gatehouse/gatehouse-1');
    await proxy.waitStatus('gatehouse-1', 'MAINT');
    const restarted = startGatehouse(0);
    const held = await signIn();
    await restarted;
    await proxy.admin('enable server gatehouse/gatehouse-1');
    await proxy.waitStatus('gatehouse-1', 'UP');

    const load = steadyLoad();
    await load.until(20);
    instances[1]!.proc.kill('SIGKILL');
    await instances[1]!.exited;
    instances[1] = null;
    await proxy.waitStatus('gatehouse-2', 'DOWN');
    const downAt = Date.now();
    await load.until(40);
    await load.stop();
    // Requests in flight at the kill may fail (retried only if they never reached the instance:
    // deploy/haproxy.cfg); once it is marked down, none.
    expect(load.results.failures.filter((f) => f.at >= downAt)).toEqual([]);

    const refreshed = await token(app, { grant_type: 'refresh_token', refresh_token: held.refresh_token });
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
    const next = (await refreshed.json()) as { access_token: string };
    expect(await introspect(next.access_token)).toMatchObject({ active: true });
    expect(await introspect(held.access_token)).toMatchObject({ active: true });
  }, 240_000);

  it('logged no error on any instance, and none in PgBouncer (nothing broke behind the transaction pooler)', () => {
    // An error a hot path tolerates (a rate-limit counter falls back to memory) still shows here.
    for (const g of started) expect(g.output()).not.toMatch(/"level":"(error|fatal)"/);
    expect(bouncer.output()).not.toMatch(/ ERROR | FATAL /);
  });

  it('left no migration lock behind in a pooled session (every instance start migrated through PgBouncer)', async () => {
    const direct = await openDatabase({ databaseUrl: pg.url, dataDir: '' });
    try {
      // Kysely's migration lock key, as PostgreSQL shows a bigint advisory lock: two 32-bit halves.
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from pg_locks
        where locktype = 'advisory' and objsubid = 1
          and ((classid::bigint << 32) | objid::bigint) = 3853314791062309107`.execute(direct.kysely);
      expect(rows[0]!.n).toBe(0);
    } finally {
      await direct.close();
    }
  });
});

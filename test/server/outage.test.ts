// The database goes away and comes back (docs/architecture.md, "Database outages"). A private
// PostgreSQL cluster is really stopped under a running Gatehouse: services keep getting
// client-credentials tokens from the client cache, everything that needs the database answers 503
// with Retry-After (OAuth `temporarily_unavailable`, or a "try again shortly" page for a person),
// and once PostgreSQL is back everything works again without a restart, nothing acknowledged lost.
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatehouse } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/log.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { formField, HttpAgent } from '../helpers/http-signin.ts';
import { createPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.ts';
import { freePort, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'https://app.example.com/callback';
type Client = { client_id: string; client_secret?: string };

describe('PostgreSQL stops and starts under a running Gatehouse', () => {
  let pg: PrivatePostgres;
  let s: TestServer;
  let cached: Client;
  let uncached: Client;
  let app: Client;
  let person: TestPerson;
  let refreshToken: string;
  let pendingInteraction: { agent: HttpAgent; url: string };

  const basic = (c: Client) => `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}`;
  const token = (c: Client, params: Record<string, string>) =>
    fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(c) },
      body: new URLSearchParams(params),
    });
  const challenge = (v: string) => crypto.createHash('sha256').update(v).digest('base64url');

  function authUrl(verifier: string): string {
    const q = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: REDIRECT,
      state: 's',
      code_challenge: challenge(verifier),
      code_challenge_method: 'S256',
    });
    return `/auth?${q}`;
  }

  /** A full sign-in (password + TOTP) and code exchange: the refresh token the app receives. */
  async function signInForRefreshToken(): Promise<string> {
    const agent = new HttpAgent(s.url);
    const verifier = crypto.randomBytes(32).toString('base64url');
    const page = await agent.follow(await agent.request(authUrl(verifier)));
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    const second = await agent.follow(
      await agent.request(`/interaction/${uid}/login`, {
        form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: person.password },
      }),
    );
    const back = await agent.follow(
      await agent.request(`/interaction/${uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code: await person.nextCode() } }),
    );
    const code = new URL(back.location!, s.url).searchParams.get('code')!;
    const res = await token(app, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
    expect(res.status).toBe(200);
    return ((await res.json()) as { refresh_token: string }).refresh_token;
  }

  async function clientCredentialsIssued(): Promise<number> {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    return Number(/gatehouse_tokens_issued_total\{grant_type="client_credentials"\} (\d+)/.exec(text)?.[1] ?? 0);
  }

  /** Poll (bounded) until `check` holds; no fixed sleeps. */
  async function eventually(check: () => Promise<boolean>, what: string, boundMs = 30_000): Promise<void> {
    const deadline = Date.now() + boundMs;
    while (Date.now() < deadline) {
      if (await check().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: not within ${boundMs} ms`);
  }

  beforeAll(async () => {
    pg = await createPrivatePostgres();
    // The clients exist before the instance starts, so its cache is not emptied by their creation.
    const setup = await openDatabase({ databaseUrl: pg.url, dataDir: '' });
    await migrateToLatest(setup);
    cached = await createClient(setup.kysely, { name: 'steady-service', grants: ['client_credentials'], roles: ['operator'] });
    uncached = await createClient(setup.kysely, { name: 'late-service', grants: ['client_credentials'] });
    app = await createClient(setup.kysely, { name: 'app', grants: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT] });
    await setup.close();

    const port = await freePort();
    const env: Record<string, string> = {
      PORT: String(port),
      GATEHOUSE_ISSUER: `http://localhost:${port}`,
      GATEHOUSE_AUDIENCE: 'https://agents.example.com',
      GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
      DATABASE_URL: pg.url,
    };
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    });
    // Gatehouse opens the database itself: the server's bounded pool, as in production.
    const gatehouse = await createGatehouse(loadConfig(env), { log: createLogger('info', sink), pollMs: 200 });
    await gatehouse.listen();
    s = { url: env.GATEHOUSE_ISSUER!, gatehouse, env, logs, testDb: null as never, close: () => gatehouse.close() };
    person = await createPerson(s, 'olu@example.com', 'viewer');

    expect((await token(cached, { grant_type: 'client_credentials' })).status).toBe(200); // now in the cache
    refreshToken = await signInForRefreshToken();
    // A person who has started signing in when the database goes away.
    const agent = new HttpAgent(s.url);
    const first = await agent.request(authUrl(crypto.randomBytes(32).toString('base64url')));
    pendingInteraction = { agent, url: first.location! };
    expect(pendingInteraction.url).toMatch(/\/interaction\//);
  }, 120_000);

  afterAll(async () => {
    await s?.close().catch(() => {});
    await pg?.destroy();
  });

  // The cached client was cached right after start: this also proves that starting an instance
  // does not empty its client cache one poll later (the built-in clients' registration once did).
  it('serves what needs no database, answers 503 for the rest, and recovers by itself', async () => {
    await pg.stop();

    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as any).checks.database).toBe(false);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200); // alive: no restart wanted

    // A service whose client is in memory keeps getting tokens, and they are counted.
    const issuedBefore = await clientCredentialsIssued();
    for (let i = 0; i < 5; i++) {
      const res = await token(cached, { grant_type: 'client_credentials' });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(((await res.json()) as any).access_token).toBeTruthy();
    }
    expect(await clientCredentialsIssued()).toBe(issuedBefore + 5);

    // Whatever needs the database: 503, Retry-After, temporarily_unavailable; never 500.
    const expectUnavailableJson = async (res: Response) => {
      const text = await res.text();
      expect(res.status, text).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(JSON.parse(text)).toMatchObject({ error: 'temporarily_unavailable' });
    };
    await expectUnavailableJson(await token(uncached, { grant_type: 'client_credentials' }));
    await expectUnavailableJson(await token(app, { grant_type: 'refresh_token', refresh_token: refreshToken }));
    await expectUnavailableJson(
      await fetch(`${s.url}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(app) },
        body: new URLSearchParams({ token: refreshToken }),
      }),
    );

    // People get a plain page saying to try again shortly.
    const expectUnavailablePage = async (res: { status: number; text: string; headers: Headers }) => {
      expect(res.status, res.text).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(res.text).toContain('Try again shortly');
      expect(res.text).not.toMatch(/oops|server_error|ECONNREFUSED|stack/i);
    };
    const browser = new HttpAgent(s.url);
    const html = { accept: 'text/html' };
    await expectUnavailablePage(await browser.request(authUrl(crypto.randomBytes(32).toString('base64url')), { headers: html }));
    await expectUnavailablePage(await pendingInteraction.agent.request(pendingInteraction.url, { headers: html }));
    await expectUnavailablePage(await browser.follow(await browser.request('/account', { headers: html }))); // via /auth
    // /auth for a program that asked for JSON is still the page: /auth is for browsers.
    const plainAuth = await fetch(`${s.url}${authUrl('v'.repeat(43))}`, { redirect: 'manual' });
    expect(plainAuth.status).toBe(503);
    expect(plainAuth.headers.get('retry-after')).toBeTruthy();

    expect(s.logs.join('')).not.toMatch(/"level":"(error|fatal)"/); // nothing logged as an error: an outage is not a bug

    await pg.start();
    await eventually(async () => (await fetch(`${s.url}/readyz`)).status === 200, 'ready again');
    await eventually(async () => (await token(uncached, { grant_type: 'client_credentials' })).status === 200, 'uncached client served');

    // The refresh token the app held before the restart still refreshes, and its successor too.
    const refreshed = await token(app, { grant_type: 'refresh_token', refresh_token: refreshToken });
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
    const next = ((await refreshed.json()) as { refresh_token: string }).refresh_token;
    expect((await token(app, { grant_type: 'refresh_token', refresh_token: next })).status).toBe(200);

    // The person who was signing in can go on; a new sign-in works.
    const resumed = await pendingInteraction.agent.request(pendingInteraction.url);
    expect(resumed.status).toBe(200);
    expect(await signInForRefreshToken()).toBeTruthy();

    // The audit chain is whole and holds every sign-in that was acknowledged.
    const verified = await verifyAudit(s.gatehouse.db.kysely);
    expect(verified).toMatchObject({ ok: true });
    const { rows } = await import('kysely').then(({ sql }) =>
      sql<{ n: number }>`select count(*)::int as n from audit_event where action = 'signin.success'`.execute(s.gatehouse.db.kysely),
    );
    expect(rows[0]!.n).toBe(2);
  });
});

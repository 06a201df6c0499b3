// Sign-in for command lines (issue 10 §2): the device authorization grant (RFC 8628), with
// openid-client's device functions as the command line and Chromium as the person's browser:
// the code is entered at /device (or the complete URI followed), the page names the application,
// the person signs in with password and authenticator code, and the command line gets tokens that
// gatehouse/verify accepts. Attacks: polling too fast (slow_down), an expired code, and guessing
// user codes (429 after the per-address budget of unauthenticated failures).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import type { Browser } from 'playwright-core';
import { listAudit } from '../../src/audit/query.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { ADDRESS_FAILURES_PER_MINUTE } from '../../src/http/rate-limits.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { gatehouse } from '../helpers/cli.ts';
import { BACKENDS } from '../helpers/db.ts';
import { alertText, formField, HttpAgent } from '../helpers/http-signin.ts';
import { signInOnPage } from '../helpers/people.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const AUDIENCE = 'https://agents.example.com';
const BASE20 = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;
const insecure = { execute: [oidc.allowInsecureRequests] };

describe.each(BACKENDS)('device authorization grant on %s', (backend) => {
  let s: TestServer;
  let browser: Browser;
  let cli: oidc.Configuration;
  let clientId: string;
  let person: TestPerson;

  beforeAll(async () => {
    [s, browser] = await Promise.all([startServer(backend), launchBrowser()]);
    ({ client_id: clientId } = await createClient(s.gatehouse.db.kysely, {
      name: 'Agentserver CLI',
      grants: ['device_code', 'refresh_token'],
      auth: 'none',
    }));
    cli = await oidc.discovery(new URL(s.url), clientId, undefined, oidc.None(), insecure);
    person = await createPerson(s, `cli-${backend}@example.com`);
  });
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  const start = () => oidc.initiateDeviceAuthorization(cli, { scope: 'openid email offline_access' });
  const poll = (device_code: string) =>
    fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code, client_id: clientId }),
    });

  it('the person enters the code, sees which application asks, signs in with a second factor; the command line gets tokens', async () => {
    const device = await start();
    expect(device.user_code).toMatch(BASE20);
    expect(device.verification_uri).toBe(`${s.url}/device`);
    expect(device.verification_uri_complete).toBe(`${s.url}/device?user_code=${device.user_code}`);
    expect(device.interval).toBe(5);
    expect(device.expires_in).toBe(600);
    const tokens = oidc.pollDeviceAuthorizationGrant(cli, device);

    const page = await (await browser.newContext()).newPage();
    await page.goto(device.verification_uri);
    // Typed as a person might: lower case, without the dash.
    await page.getByLabel('Code').fill(device.user_code.replace('-', '').toLowerCase());
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.locator('[data-client-name]').textContent()).resolves.toBe('Agentserver CLI');
    await expect(page.locator('[data-user-code]').textContent()).resolves.toBe(device.user_code);
    await page.getByRole('button', { name: 'Continue' }).click();
    // The full sign-in: password, then the authenticator code.
    await page.getByLabel('Password').waitFor();
    expect(page.url()).toMatch(/\/interaction\//);
    await signInOnPage(page, person.email, person.nextCode);
    await page.getByRole('heading', { name: 'Device signed in' }).waitFor();
    await expect(page.locator('[data-client-name]').textContent()).resolves.toBe('Agentserver CLI');

    const got = await tokens;
    const claims = await createVerifier({ issuer: s.url, audience: AUDIENCE }).verify(got.access_token);
    expect(claims).toMatchObject({ sub: person.id, client_id: clientId, acr: 'urn:gatehouse:acr:mfa' });
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
    expect(got.claims()).toMatchObject({ sub: person.id, email: person.email });
    expect(got.refresh_token).toBeTruthy();
    // The code is used up: entering it again is refused.
    await page.goto(device.verification_uri);
    await page.getByLabel('Code').fill(device.user_code);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/already used/);
  }, 120_000);

  it('verification_uri_complete leads straight to the confirmation; Cancel denies the command line', async () => {
    const device = await start();
    const page = await (await browser.newContext()).newPage();
    await page.goto(device.verification_uri_complete!);
    await expect(page.locator('[data-client-name]').textContent()).resolves.toBe('Agentserver CLI');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect(page.locator('.notice').textContent()).resolves.toMatch(/cancelled/);
    await expect(oidc.pollDeviceAuthorizationGrant(cli, device)).rejects.toMatchObject({ error: 'access_denied' });
  }, 120_000);

  it('answers slow_down to a command line polling faster than the interval', async () => {
    const device = await start();
    const first = await poll(device.device_code);
    expect(first.status).toBe(400);
    expect(await first.json()).toMatchObject({ error: 'authorization_pending' });
    const second = await poll(device.device_code);
    expect(second.status).toBe(400);
    expect(await second.json()).toMatchObject({ error: 'slow_down' });
  });

  it('refuses an expired code: expired_token to the command line, a plain message at /device', async () => {
    const device = await start();
    // The code's lifetime passes (what 10 minutes do).
    const userCode = device.user_code.replace('-', '');
    const db = s.gatehouse.db.kysely;
    const row = await db
      .selectFrom('oidc_payload')
      .select('payload')
      .where('model', '=', 'DeviceCode')
      .where('user_code', '=', userCode)
      .executeTakeFirstOrThrow();
    const payload = { ...(row.payload as Record<string, unknown>), exp: Math.floor(Date.now() / 1000) - 1 };
    await db
      .updateTable('oidc_payload')
      .set({ payload: JSON.stringify(payload) })
      .where('model', '=', 'DeviceCode')
      .where('user_code', '=', userCode)
      .execute();
    const res = await poll(device.device_code);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'expired_token' });
    const agent = new HttpAgent(s.url);
    const entry = await agent.request('/device');
    const answer = await agent.request('/device', { form: { xsrf: formField(entry.text, 'xsrf')!, user_code: device.user_code } });
    expect(alertText(answer.text)).toMatch(/expired/);
  });

  // Last: it leaves this address over its budget for a minute.
  it('counts wrong user codes against the address and answers 429 once over the budget', async () => {
    const agent = new HttpAgent(s.url);
    const entry = await agent.request('/device');
    expect(entry.status).toBe(200);
    expect(entry.headers.get('cache-control')).toMatch(/no-store/);
    // Each answer carries a fresh form token, as a person retyping the code would use. The budget
    // is spent by the 30 failures; the one after them trips the limit, and the next is refused.
    let xsrf = formField(entry.text, 'xsrf')!;
    for (let i = 0; i < ADDRESS_FAILURES_PER_MINUTE + 1; i++) {
      const wrong = await agent.request('/device', { form: { xsrf, user_code: 'BCDF-GHJK' } });
      expect(wrong.status, `attempt ${i + 1}`).toBe(200);
      expect(alertText(wrong.text)).toMatch(/not valid/);
      xsrf = formField(wrong.text, 'xsrf')!;
    }
    const refused = await agent.request('/device', { form: { xsrf, user_code: 'BCDF-GHJK' }, headers: { accept: 'text/html' } });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.text).toMatch(/Too many failed requests/);
    // The trip is audited once, naming the endpoint.
    await s.gatehouse.auditQueue.flush();
    const trips = (await listAudit(s.gatehouse.db.kysely, { action: 'ratelimit.trip', limit: 10 })).events;
    expect(trips.filter((e) => (e.details as { endpoint?: string }).endpoint === 'device')).toHaveLength(1);
    // The command line's polling at /token is over the same address budget too.
    expect((await poll('anything')).status).toBe(429);
  });
});

describe('device clients from the command line (PostgreSQL)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('postgres');
  });
  afterAll(() => s?.close());

  it('clients create --grant device_code --public registers a public command-line client', async () => {
    const created = await gatehouse(
      ['clients', 'create', '--name', 'Agentserver CLI', '--grant', 'device_code', '--public', '--json'],
      s.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const { client_id, client_secret } = JSON.parse(created.stdout);
    expect(client_secret).toBeUndefined();
    await s.gatehouse.refresh();
    expect((await s.gatehouse.clients.get(client_id))?.metadata).toMatchObject({
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
      response_types: [],
      token_endpoint_auth_method: 'none',
    });
    const listed = await gatehouse(['clients', 'list', '--json'], s.env);
    expect(JSON.parse(listed.stdout).clients).toEqual(
      expect.arrayContaining([expect.objectContaining({ client_id, grants: ['device_code'] })]),
    );
    const cli = await oidc.discovery(new URL(s.url), client_id, undefined, oidc.None(), insecure);
    expect((await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' })).user_code).toMatch(BASE20);
    // A service cannot also be a device client.
    const bad = await gatehouse(['clients', 'create', '--name', 'x', '--grant', 'device_code', '--grant', 'client_credentials'], s.env);
    expect(bad.code).toBe(2);
  });
});

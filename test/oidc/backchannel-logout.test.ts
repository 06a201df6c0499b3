// OpenID Connect Back-Channel Logout 1.0 (issue 10 §3): when a person's session ends, every client
// that took part in it and registered a backchannel_logout_uri receives a signed logout token. The
// receiver here is a small HTTP server that checks each token with jose (as any library would) and
// with gatehouse/verify's verifyLogoutToken (as the agentserver does). Triggers driven as their
// users drive them: sign-out at /session/end, a password change in /account, one session ended
// in /account, an owner ending sessions in the console, a factor reset from the CLI, a session past its idle time (the cleanup
// job); and a receiver that does not answer gets bounded retries and a counted failure while the
// person's sign-out goes through.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { createClient } from '../../src/clients/clients.service.ts';
import { cleanupExpired } from '../../src/jobs/cleanup.ts';
import { pendingDeliveries } from '../../src/oidc/backchannel-logout.repository.ts';
import { createVerifier, VerifyError } from '../../src/verify/index.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { gatehouse } from '../helpers/cli.ts';
import { BACKENDS } from '../helpers/db.ts';
import { formField, HttpAgent } from '../helpers/http-signin.ts';
import { adminOverHttp, signInOverHttp } from '../helpers/people.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

const AUDIENCE = 'https://agents.example.com';
const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const NEW_PASSWORD = 'another long passphrase for logout 9';

interface Received {
  token: string;
  contentType: string | undefined;
}

/** A client's logout endpoint: answers 200 (or never, when `hang`), and keeps what it got. */
async function startReceiver(opts: { hang?: boolean } = {}) {
  const received: Received[] = [];
  let waiters: Array<() => void> = [];
  const open: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ token: new URLSearchParams(body).get('logout_token') ?? '', contentType: req.headers['content-type'] });
      waiters.forEach((w) => w());
      waiters = [];
      if (opts.hang) open.push(res);
      else res.writeHead(200, { 'cache-control': 'no-store' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/backchannel-logout`;
  return {
    url,
    received,
    /** Resolves once `n` tokens have arrived in all. */
    async waitFor(n: number): Promise<Received[]> {
      while (received.length < n) await new Promise<void>((r) => waiters.push(r));
      return received.slice(0, n);
    },
    close: () =>
      new Promise<void>((r) => {
        open.forEach((res) => res.destroy());
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe.each(BACKENDS)('back-channel logout on %s', (backend) => {
  let s: TestServer;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let rp: RelyingParty;
  let app: { client_id: string; client_secret?: string };
  let jwks: ReturnType<typeof createRemoteJWKSet>;

  beforeAll(async () => {
    receiver = await startReceiver();
    s = await startServer(backend, {}, { backchannelLogout: { retryDelaysMs: [100, 200], timeoutMs: 1000 } });
    const port = await freePort();
    app = await createClient(s.gatehouse.db.kysely, {
      name: 'Agent console',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [`http://127.0.0.1:${port}/callback`],
      backchannelLogoutUri: receiver.url,
    });
    rp = await startRelyingParty(s.url, app, port);
    jwks = createRemoteJWKSet(new URL(`${s.url}/jwks`));
  });
  afterAll(async () => {
    await rp?.close();
    await s?.close();
    await receiver?.close();
  });

  /** The person signs in to the application in a browser of their own; the application keeps the tokens. */
  async function signInToApp(person: TestPerson) {
    const agent = new HttpAgent(s.url);
    const flow = await rp.start({ scope: 'openid email' });
    const end = await signInOverHttp(agent, await agent.follow(await agent.request(flow.url)), person);
    const tokens = await rp.finish(new URL(end.location!), flow);
    return { agent, tokens, sid: decodeJwt(tokens.id_token!).sid as string };
  }

  /** What the application's logout endpoint checks, with jose alone (OIDC Back-Channel Logout 1.0 §2.6). */
  async function checkWithJose(r: Received) {
    expect(r.contentType).toBe('application/x-www-form-urlencoded');
    const { payload, protectedHeader } = await jwtVerify(r.token, jwks, {
      issuer: s.url,
      audience: app.client_id,
      typ: 'logout+jwt',
      algorithms: ['RS256'],
      maxTokenAge: '2 minutes',
      requiredClaims: ['iat', 'jti', 'exp'],
    });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload.events).toEqual({ [EVENT]: {} });
    expect(payload).not.toHaveProperty('nonce');
    return payload;
  }

  it('signing out at /session/end sends the application a signed logout token for that session', async () => {
    const person = await createPerson(s, `out-${backend}@example.com`);
    const { agent, tokens, sid } = await signInToApp(person);
    const end = await agent.follow(
      await agent.request(`/session/end?${new URLSearchParams({ id_token_hint: tokens.id_token!, client_id: app.client_id })}`),
    );
    const done = await agent.request('/session/end/confirm', { form: { xsrf: formField(end.text, 'xsrf')!, logout: 'yes' } });
    expect(done.status).toBe(303);
    const [got] = await receiver.waitFor(1);
    const payload = await checkWithJose(got!);
    expect(payload).toMatchObject({ sub: person.id, sid, aud: app.client_id });

    // The agentserver's side: verifyLogoutToken accepts it once, and refuses it replayed.
    const verifier = createVerifier({ issuer: s.url, audience: AUDIENCE, clientId: app.client_id });
    await expect(verifier.verifyLogoutToken(got!.token)).resolves.toMatchObject({ sub: person.id, sid });
    await expect(verifier.verifyLogoutToken(got!.token)).rejects.toMatchObject({ code: 'replayed' });
    // Meant for another client, or an access token passed off as a logout token: refused.
    const other = createVerifier({ issuer: s.url, audience: AUDIENCE, clientId: 'app_someoneelse' });
    await expect(other.verifyLogoutToken(got!.token)).rejects.toMatchObject({ code: 'wrong_audience' });
    await expect(verifier.verifyLogoutToken(tokens.access_token)).rejects.toBeInstanceOf(VerifyError);
    await expect(verifier.verifyLogoutToken(tokens.id_token!)).rejects.toMatchObject({ code: 'wrong_type' });
    expect(await pendingDeliveries(s.gatehouse.db.kysely)).toEqual([]);
  });

  it('a password change ends the other sessions: the application hears about the one it took part in', async () => {
    const before = receiver.received.length;
    const person = await createPerson(s, `pw-${backend}@example.com`);
    const { sid } = await signInToApp(person);
    // In another browser, the person changes the password in /account.
    const other = new HttpAgent(s.url);
    const account = await signInOverHttp(other, await other.follow(await other.request('/account')), person);
    const page = await other.follow(account);
    expect(page.status).toBe(200);
    const changed = await other.request('/account/password', {
      form: { _csrf: formField(page.text, '_csrf')!, current: person.password, password: NEW_PASSWORD },
    });
    expect(changed.status).toBe(200);
    const got = (await receiver.waitFor(before + 1)).at(-1)!;
    expect(await checkWithJose(got)).toMatchObject({ sub: person.id, sid });
    const verifier = createVerifier({ issuer: s.url, audience: AUDIENCE, clientId: app.client_id });
    await expect(verifier.verifyLogoutToken(got.token)).resolves.toMatchObject({ sub: person.id, sid });
  });

  it('ending one session in /account announces that session only', async () => {
    const before = receiver.received.length;
    const person = await createPerson(s, `one-${backend}@example.com`);
    const { sid } = await signInToApp(person);
    const other = new HttpAgent(s.url);
    const page = await other.follow(await signInOverHttp(other, await other.follow(await other.request('/account')), person));
    // The other browser's session is listed with its End session button.
    const ended = await other.request('/account/sessions/end', {
      form: { _csrf: formField(page.text, '_csrf')!, uid: formField(page.text, 'uid')! },
    });
    expect(ended.status).toBe(200);
    const got = (await receiver.waitFor(before + 1)).at(-1)!;
    expect(await checkWithJose(got)).toMatchObject({ sub: person.id, sid });
  });

  it('an owner ending a person’s sessions in the console sends a logout token for each session', async () => {
    const before = receiver.received.length;
    const owner = await createPerson(s, `owner-${backend}@example.com`, 'owner');
    const person = await createPerson(s, `ended-${backend}@example.com`);
    const laptop = await signInToApp(person);
    const phone = await signInToApp(person);
    const { agent, landed } = await adminOverHttp(s, owner);
    const ended = await agent.request(`/admin/users/${person.id}/end-sessions`, { form: { _csrf: formField(landed.text, '_csrf')! } });
    expect(ended.status).toBe(303);
    const got = (await receiver.waitFor(before + 2)).slice(before);
    const payloads = await Promise.all(got.map(checkWithJose));
    expect(payloads.map((p) => p.sub)).toEqual([person.id, person.id]);
    expect(payloads.map((p) => p.sid).sort()).toEqual([laptop.sid, phone.sid].sort());
    expect(new Set(payloads.map((p) => p.jti)).size).toBe(2);
  });

  it('a session past its idle time is announced by the cleanup job that deletes it', async () => {
    const before = receiver.received.length;
    const person = await createPerson(s, `idle-${backend}@example.com`);
    const { sid } = await signInToApp(person);
    // The session's stored expiry passes (what GATEHOUSE_SESSION_IDLE_TTL does with time).
    const db = s.gatehouse.db.kysely;
    await db
      .updateTable('oidc_payload')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('model', '=', 'Session')
      .where((eb) => eb(eb.ref('payload', '->>').key('accountId' as never), '=', person.id))
      .execute();
    const counts = await cleanupExpired(db);
    expect(counts.expiredSessionLogouts).toBe(1);
    const got = (await receiver.waitFor(before + 1)).at(-1)!;
    expect(await checkWithJose(got)).toMatchObject({ sub: person.id, sid });
    // A second cleanup (another instance) announces nothing again.
    expect((await cleanupExpired(db)).expiredSessionLogouts).toBe(0);
  });

  it('a receiver that does not answer gets bounded retries and a counted failure; the sign-out is not held up', async () => {
    const silent = await startReceiver({ hang: true });
    const port = await freePort();
    const quiet = await createClient(s.gatehouse.db.kysely, {
      name: 'Silent app',
      grants: ['authorization_code'],
      redirectUris: [`http://127.0.0.1:${port}/callback`],
      backchannelLogoutUri: silent.url,
    });
    const quietRp = await startRelyingParty(s.url, quiet, port);
    const metrics = s.gatehouse.metrics.backchannelLogout;
    const count = async (outcome: string) => (await metrics.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
    const failedBefore = await count('failed');
    const retriedBefore = await count('retried');
    try {
      const person = await createPerson(s, `silent-${backend}@example.com`);
      const agent = new HttpAgent(s.url);
      const flow = await quietRp.start();
      const end = await signInOverHttp(agent, await agent.follow(await agent.request(flow.url)), person);
      const tokens = await quietRp.finish(new URL(end.location!), flow);
      const confirm = await agent.follow(
        await agent.request(`/session/end?${new URLSearchParams({ id_token_hint: tokens.id_token!, client_id: quiet.client_id })}`),
      );
      const done = await agent.request('/session/end/confirm', { form: { xsrf: formField(confirm.text, 'xsrf')!, logout: 'yes' } });
      // Signed out while the first delivery is still waiting for an answer.
      expect(done.status).toBe(303);
      expect(await count('failed')).toBe(failedBefore);
      // Three attempts (the first and two retries), each timing out, then given up, counted and logged.
      await silent.waitFor(3);
      while ((await count('failed')) === failedBefore) await new Promise((r) => setTimeout(r, 100));
      expect(await count('retried')).toBe(retriedBefore + 2);
      expect(await count('failed')).toBe(failedBefore + 1);
      expect(silent.received).toHaveLength(3);
      // The same jti on every attempt, so a receiver that did get one can drop the rest.
      expect(new Set(silent.received.map((r) => decodeJwt(r.token).jti)).size).toBe(1);
      expect(decodeProtectedHeader(silent.received[0]!.token).typ).toBe('logout+jwt');
      const logs = s.logs.join('');
      expect(logs).toMatch(/back-channel logout failed: will retry/);
      expect(logs).toMatch(/back-channel logout failed: giving up/);
      expect(logs).not.toContain(silent.received[0]!.token);
      expect(await pendingDeliveries(s.gatehouse.db.kysely)).toEqual([]);
    } finally {
      await quietRp.close();
      await silent.close();
    }
  });
});

describe('back-channel logout from the command line (PostgreSQL)', () => {
  let s: TestServer;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let person: TestPerson;

  beforeAll(async () => {
    receiver = await startReceiver();
    s = await startServer('postgres');
  });
  afterAll(async () => {
    await s?.close();
    await receiver?.close();
  });

  it('clients create --backchannel-logout-uri registers it; users disable ends the sessions and the server delivers', async () => {
    const port = await freePort();
    const created = await gatehouse(
      [
        'clients',
        'create',
        '--name',
        'Agent console',
        '--grant',
        'authorization_code',
        '--redirect-uri',
        `http://127.0.0.1:${port}/callback`,
        '--backchannel-logout-uri',
        receiver.url,
        '--json',
      ],
      s.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const app = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
    await s.gatehouse.refresh();
    const record = await s.gatehouse.clients.get(app.client_id);
    expect(record?.metadata).toMatchObject({ backchannel_logout_uri: receiver.url, backchannel_logout_session_required: true });
    const discovery = (await (await fetch(`${s.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({ backchannel_logout_supported: true, backchannel_logout_session_supported: true });

    const bad = await gatehouse(
      ['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--backchannel-logout-uri', receiver.url],
      s.env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no sign-in sessions/);

    const rp = await startRelyingParty(s.url, app, port);
    try {
      person = await createPerson(s, 'disabled@example.com');
      const agent = new HttpAgent(s.url);
      const flow = await rp.start();
      const end = await signInOverHttp(agent, await agent.follow(await agent.request(flow.url)), person);
      const tokens = await rp.finish(new URL(end.location!), flow);
      const disabled = await gatehouse(['users', 'disable', '--email', person.email], s.env);
      expect(disabled.code, disabled.stderr).toBe(0);
      const [got] = await receiver.waitFor(1);
      const verifier = createVerifier({ issuer: s.url, audience: AUDIENCE, clientId: app.client_id });
      await expect(verifier.verifyLogoutToken(got!.token)).resolves.toMatchObject({
        sub: person.id,
        sid: decodeJwt(tokens.id_token!).sid,
        events: { [EVENT]: {} },
      });
    } finally {
      await rp.close();
    }
  });
});

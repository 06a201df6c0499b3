// Issue 7 point 5: sign-in sessions end (ASVS V3.3; Keycloak's SSO Session Idle / Max). Attack:
// a session (or a refresh token taken from an application) kept alive past its limits. With
// small lifetimes set through the validated configuration:
//  - after the idle time, prompt=none answers login_required and the refresh token is refused;
//  - a refresh restarts the idle timer (the session and its refresh tokens stay alive);
//  - continuous refreshing still ends at the absolute cap counted from the sign-in.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.service.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createPerson } from '../helpers/accounts.ts';
import { BACKENDS } from '../helpers/db.ts';
import { HttpAgent } from '../helpers/http-signin.ts';
import { signInOverHttp } from '../helpers/people.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'https://app.example.com/callback';
const IDLE = 4;
const MAX = 9;
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

function harness(get: () => { s: TestServer; app: { client_id: string; client_secret?: string } }) {
  const verifier = () => crypto.randomBytes(32).toString('base64url');
  const challenge = (v: string) => crypto.createHash('sha256').update(v).digest('base64url');
  const authUrl = (v: string, extra: Record<string, string> = {}) =>
    `/auth?${new URLSearchParams({
      client_id: get().app.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: REDIRECT,
      state: 'xyz',
      code_challenge: challenge(v),
      code_challenge_method: 'S256',
      ...extra,
    })}`;
  const token = (body: Record<string, string>) => {
    const { s, app } = get();
    return fetch(`${s.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams(body),
    });
  };
  /** A person signs in in a browser; the application gets a refresh token. Returns the browser and the token. */
  async function signIn(email: string): Promise<{ agent: HttpAgent; refreshToken: string; signedInAt: number }> {
    const { s } = get();
    const person = await createPerson(s, email, 'viewer');
    const agent = new HttpAgent(s.url);
    const v = verifier();
    const page = await agent.follow(await agent.request(authUrl(v)));
    const back = await signInOverHttp(agent, page, person);
    const signedInAt = Date.now();
    const code = new URL(back.location!).searchParams.get('code')!;
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: v });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { refresh_token: string };
    expect(body.refresh_token).toBeTruthy();
    return { agent, refreshToken: body.refresh_token, signedInAt };
  }
  /** Refresh; the new refresh token on success, or the OAuth error. */
  async function refresh(rt: string): Promise<{ ok: true; refreshToken: string } | { ok: false; error: string }> {
    const res = await token({ grant_type: 'refresh_token', refresh_token: rt });
    const body = (await res.json()) as any;
    return res.status === 200 ? { ok: true, refreshToken: body.refresh_token } : { ok: false, error: body.error };
  }
  /** prompt=none from the browser: 'code' if the session is alive, else the error. */
  async function silent(agent: HttpAgent): Promise<string> {
    const res = await agent.follow(await agent.request(authUrl(verifier(), { prompt: 'none' })));
    const back = new URL(res.location!, get().s.url);
    return back.searchParams.get('code') ? 'code' : back.searchParams.get('error')!;
  }
  return { signIn, refresh, silent };
}

describe('session lifetime configuration', () => {
  it('has the documented defaults and refuses a cap shorter than the idle time', () => {
    const c = loadConfig({});
    expect([c.sessionIdleTtl, c.sessionMaxTtl]).toEqual([1800, 43200]);
    expect(() => loadConfig({ GATEHOUSE_SESSION_IDLE_TTL: '60', GATEHOUSE_SESSION_MAX_TTL: '30' })).toThrow(/GATEHOUSE_SESSION_MAX_TTL/);
    expect(() => loadConfig({ GATEHOUSE_SESSION_IDLE_TTL: '0' })).toThrow(/GATEHOUSE_SESSION_IDLE_TTL/);
  });
});

describe.each(BACKENDS)('sign-in sessions end on %s', (backend) => {
  let s: TestServer;
  let app: { client_id: string; client_secret?: string };
  const h = harness(() => ({ s, app }));

  beforeAll(async () => {
    s = await startServer(backend, { GATEHOUSE_SESSION_IDLE_TTL: String(IDLE), GATEHOUSE_SESSION_MAX_TTL: String(MAX) });
    app = await createClient(s.gatehouse.db.kysely, {
      name: 'app',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [REDIRECT],
    });
  });
  afterAll(() => s?.close());

  it('after the idle time, prompt=none gets login_required and the refresh token is refused', async () => {
    const { agent, refreshToken } = await h.signIn('idle@example.com');
    expect(await h.silent(agent)).toBe('code'); // alive now (and this restarts the idle timer)
    await sleep(IDLE + 1);
    expect(await h.refresh(refreshToken)).toEqual({ ok: false, error: 'invalid_grant' });
    expect(await h.silent(agent)).toBe('login_required');
  });

  it('a refresh before the idle time restarts the timer: the session and its refresh tokens outlive the first idle deadline', async () => {
    const { agent, refreshToken, signedInAt } = await h.signIn('active@example.com');
    let rt = refreshToken;
    for (let i = 0; i < 3; i++) {
      await sleep(IDLE / 2);
      const r = await h.refresh(rt);
      expect(r.ok, `refresh ${i + 1}`).toBe(true);
      rt = (r as { refreshToken: string }).refreshToken;
    }
    expect(Date.now() - signedInAt).toBeGreaterThan(IDLE * 1000); // past the deadline no refresh would have moved
    expect(await h.silent(agent)).toBe('code');
  });

  it('continuous refreshing still ends at the absolute cap counted from the sign-in', async () => {
    const { agent, refreshToken, signedInAt } = await h.signIn('capped@example.com');
    let rt = refreshToken;
    let last: Awaited<ReturnType<typeof h.refresh>> = { ok: true, refreshToken: rt };
    let lastOkAt = signedInAt;
    // Refresh every IDLE/2 s (always before the idle deadline) for up to MAX + IDLE seconds.
    while (Date.now() - signedInAt < (MAX + IDLE) * 1000) {
      await sleep(IDLE / 2);
      last = await h.refresh(rt);
      if (!last.ok) break;
      rt = last.refreshToken;
      lastOkAt = Date.now();
    }
    expect(last).toEqual({ ok: false, error: 'invalid_grant' });
    // It ended because of the cap: the last success was within MAX of the sign-in, and the
    // refreshes kept it alive past the first idle deadline.
    expect(lastOkAt - signedInAt).toBeLessThan((MAX + 1) * 1000); // + the last response's own travel
    expect(lastOkAt - signedInAt).toBeGreaterThan(IDLE * 1000);
    expect(await h.silent(agent)).toBe('login_required');
  });
});

// The authorization endpoint and the code grant under attack: PKCE required (S256 only), exact
// redirect URIs (no open redirect), single-use codes whose reuse revokes the grant, prompt=none.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'https://app.example.com/callback';

describe('authorization requests and codes (PostgreSQL)', () => {
  let s: TestServer;
  let app: { client_id: string; client_secret?: string };
  let person: TestPerson;

  beforeAll(async () => {
    s = await startServer('postgres');
    app = await createClient(s.gatehouse.db.kysely, {
      name: 'app',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [REDIRECT],
    });
    person = await createPerson(s, 'mary@example.com', 'viewer');
  });
  afterAll(() => s?.close());

  const verifier = () => crypto.randomBytes(32).toString('base64url');
  const challenge = (v: string) => crypto.createHash('sha256').update(v).digest('base64url');
  const authUrl = (extra: Record<string, string>) =>
    `/auth?${new URLSearchParams({ client_id: app.client_id, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT, state: 'xyz', ...extra })}`;

  /** Sign in through the steps and return the final redirect to the application. */
  async function signIn(agent: HttpAgent, v: string): Promise<URL> {
    const page = await agent.follow(await agent.request(authUrl({ code_challenge: challenge(v), code_challenge_method: 'S256' })));
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    const second = await agent.follow(
      await agent.request(`/interaction/${uid}/login`, {
        form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: person.password },
      }),
    );
    const back: Step = await agent.follow(
      await agent.request(`/interaction/${uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code: await person.nextCode() } }),
    );
    return new URL(back.location!, s.url);
  }

  const exchange = (code: string, v: string) =>
    fetch(`${s.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: v }),
    });

  it('requires PKCE with S256, for confidential clients too', async () => {
    const agent = new HttpAgent(s.url);
    const cases: Array<Record<string, string>> = [{}, { code_challenge: challenge(verifier()), code_challenge_method: 'plain' }];
    for (const extra of cases) {
      const res = await agent.request(authUrl(extra));
      const to = new URL(res.location!, s.url);
      expect(to.origin + to.pathname).toBe(REDIRECT); // a valid redirect URI: the error goes back to it
      expect(to.searchParams.get('error')).toBe('invalid_request');
      expect(to.searchParams.get('iss')).toBe(s.url); // RFC 9207
    }
  });

  it('matches redirect URIs exactly and never redirects to an unregistered one', async () => {
    const agent = new HttpAgent(s.url);
    for (const uri of [
      `${REDIRECT}/../evil`,
      `${REDIRECT}?next=https://evil.example.com`,
      'https://evil.example.com/callback',
      'https://app.example.com/callback/',
    ]) {
      const res = await agent.request(authUrl({ redirect_uri: uri, code_challenge: challenge(verifier()), code_challenge_method: 'S256' }));
      expect(res.status, uri).toBe(400);
      expect(res.location, uri).toBeNull();
      expect(res.text).toMatch(/redirect_uri/);
    }
  });

  it('answers prompt=none with login_required without a session, and with a code once signed in', async () => {
    const agent = new HttpAgent(s.url);
    const none = await agent.request(authUrl({ prompt: 'none', code_challenge: challenge(verifier()), code_challenge_method: 'S256' }));
    expect(new URL(none.location!, s.url).searchParams.get('error')).toBe('login_required');
    await signIn(agent, verifier());
    const v = verifier();
    const silent = await agent.follow(
      await agent.request(authUrl({ prompt: 'none', code_challenge: challenge(v), code_challenge_method: 'S256' })),
    );
    const code = new URL(silent.location!, s.url).searchParams.get('code');
    expect(code).toBeTruthy();
    expect((await exchange(code!, v)).status).toBe(200);
  });

  it('refuses a wrong code_verifier, and a code used twice revokes what the first use gave', async () => {
    const agent = new HttpAgent(s.url);
    const v = verifier();
    const back = await signIn(agent, v);
    expect(back.searchParams.get('iss')).toBe(s.url);
    const code = back.searchParams.get('code')!;
    const wrong = await exchange(code, verifier());
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as any).error).toBe('invalid_grant');

    // A fresh sign-in (the failed attempt above consumed nothing it should not have).
    const v2 = verifier();
    const code2 = (await signIn(new HttpAgent(s.url), v2)).searchParams.get('code')!;
    const first = await exchange(code2, v2);
    expect(first.status).toBe(200);
    const tokens = (await first.json()) as any;
    const replay = await exchange(code2, v2);
    expect(replay.status).toBe(400);
    expect(((await replay.json()) as any).error).toBe('invalid_grant');
    // The code's reuse revoked the grant: the refresh token from the first exchange is dead.
    const refresh = await fetch(`${s.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
    });
    expect(refresh.status).toBe(400);
  });
});

// Refresh tokens and authorization codes are single-use even when every use arrives at the same
// instant (RFC 9700 §4.14.2 reuse detection; RFC 6749 §4.1.2 single-use codes): the consume is a
// conditional UPDATE, and the losers of the race answer invalid_grant and revoke the grant.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { BACKENDS } from '../helpers/db.ts';
import { formField, HttpAgent } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'https://app.example.com/callback';

describe.each(BACKENDS)('single use at the same instant (%s)', (backend) => {
  let s: TestServer;
  let app: { client_id: string; client_secret?: string };
  let person: TestPerson;

  beforeAll(async () => {
    s = await startServer(backend);
    app = await createClient(s.gatehouse.db.kysely, {
      name: 'app',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [REDIRECT],
    });
    person = await createPerson(s, 'rae@example.com', 'viewer');
  });
  afterAll(() => s?.close());

  const challenge = (v: string) => crypto.createHash('sha256').update(v).digest('base64url');
  const basic = () => `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`;
  const token = (params: Record<string, string>) =>
    fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
      body: new URLSearchParams(params),
    });

  /** A code from a full sign-in, and its PKCE verifier. */
  async function freshCode(): Promise<{ code: string; verifier: string }> {
    const agent = new HttpAgent(s.url);
    const verifier = crypto.randomBytes(32).toString('base64url');
    const q = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: REDIRECT,
      state: 's',
      code_challenge: challenge(verifier),
      code_challenge_method: 'S256',
    });
    const page = await agent.follow(await agent.request(`/auth?${q}`));
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    const second = await agent.follow(
      await agent.request(`/interaction/${uid}/login`, {
        form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: person.password },
      }),
    );
    const back = await agent.follow(
      await agent.request(`/interaction/${uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code: await person.nextCode() } }),
    );
    return { code: new URL(back.location!, s.url).searchParams.get('code')!, verifier };
  }

  it('lets exactly one of ten parallel exchanges of one code succeed', async () => {
    const { code, verifier } = await freshCode();
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier })),
    );
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as Array<{ error?: string }>;
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(bodies.filter((b) => b.error === 'invalid_grant')).toHaveLength(9);
  });

  it('lets exactly one of ten parallel refreshes with one token succeed, and revokes the grant as reuse', async () => {
    const { code, verifier } = await freshCode();
    const first = (await (
      await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier })
    ).json()) as { refresh_token: string };
    expect(first.refresh_token).toBeTruthy();
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => token({ grant_type: 'refresh_token', refresh_token: first.refresh_token })),
    );
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as Array<{ error?: string; refresh_token?: string }>;
    expect(answers.map((r) => r.status).filter((st) => st === 200)).toHaveLength(1);
    expect(bodies.filter((b) => b.error === 'invalid_grant')).toHaveLength(9);
    // The winner's new refresh token belongs to a grant revoked by the reuse.
    const winner = bodies.find((b) => b.refresh_token)!;
    const after = await token({ grant_type: 'refresh_token', refresh_token: winner.refresh_token! });
    expect(after.status).toBe(400);
    expect(((await after.json()) as { error: string }).error).toBe('invalid_grant');
  });
});

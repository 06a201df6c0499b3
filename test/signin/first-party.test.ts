// The sign-in's round trips: consent is part of the authorization request itself for a
// first-party client (src/oidc/first-party-grant.ts), not an extra interaction, and the password
// step answers with the second-factor page rather than a redirect to it.
import { afterEach, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { sql } from 'kysely';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPerson } from '../helpers/accounts.ts';
import { formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { signInOverHttp } from '../helpers/people.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';

function authorizeUrl(clientId: string, extra: Record<string, string> = {}) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid email',
    redirect_uri: REDIRECT,
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: 'st',
    ...extra,
  });
  return { url: `/auth?${params}`, verifier };
}

/** Follow redirects by hand, noting every URL on Gatehouse that was visited. */
async function followNoting(agent: HttpAgent, step: Step, visited: string[]): Promise<Step> {
  let s = step;
  for (let i = 0; i < 10 && s.location; i++) {
    const next = new URL(s.location, s.url);
    if (next.origin !== new URL(agent.base).origin) return s;
    visited.push(next.pathname);
    s = await agent.request(next.href);
  }
  return s;
}

async function grants(s: TestServer) {
  const { rows } = await sql<{ payload: any }>`select payload from oidc_payload where model = 'Grant'`.execute(s.gatehouse.db.kysely);
  return rows.map((r) => r.payload);
}

describe('sign-in round trips', () => {
  let s: TestServer | undefined;
  afterEach(async () => s?.close());

  it('ends the sign-in at the application without a consent interaction, with a grant covering the request', async () => {
    s = await startServer('postgres');
    const app = await createClient(s.gatehouse.db.kysely, {
      name: 'app',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [REDIRECT],
    });
    const person = await createPerson(s, 'ada@example.com');
    const agent = new HttpAgent(s.url);
    const page = await agent.follow(await agent.request(authorizeUrl(app.client_id).url));
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    const second = await agent.follow(
      await agent.request(`/interaction/${uid}/login`, {
        form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: person.password },
      }),
    );
    const visited: string[] = [];
    const done = await followNoting(
      agent,
      await agent.request(`/interaction/${uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code: await person.nextCode() } }),
      visited,
    );
    // From the last sign-in step: one resumption of /auth, then the application; no consent step.
    expect(done.location ?? `${done.status} ${done.url}`).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
    expect(visited).toEqual([`/auth/${uid}`]);
    const [grant] = await grants(s);
    expect(grant.accountId).toBe(person.id);
    expect(grant.clientId).toBe(app.client_id);
    expect(grant.openid.scope.split(' ').sort()).toEqual(['email', 'openid']);
    expect(Object.values(grant.resources ?? {})).toHaveLength(1);
  });

  it('gives a second application of a live session a code with prompt=none (no consent_required)', async () => {
    s = await startServer('postgres');
    const one = await createClient(s.gatehouse.db.kysely, { name: 'one', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    const two = await createClient(s.gatehouse.db.kysely, { name: 'two', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    const person = await createPerson(s, 'grace@example.com');
    const agent = new HttpAgent(s.url);
    const page = await agent.follow(await agent.request(authorizeUrl(one.client_id).url));
    expect((await signInOverHttp(agent, page, person)).location).toMatch(/callback\?code=/);
    const silent = await agent.follow(await agent.request(authorizeUrl(two.client_id, { prompt: 'none' }).url));
    expect(silent.location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
    expect((await grants(s)).map((g) => g.clientId).sort()).toEqual([one.client_id, two.client_id].sort());
  });

  it('writes no grant for a request that asks the signed-in person to sign in again', async () => {
    s = await startServer('postgres');
    const app = await createClient(s.gatehouse.db.kysely, { name: 'app', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    const other = await createClient(s.gatehouse.db.kysely, { name: 'other', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    const person = await createPerson(s, 'linus@example.com');
    const agent = new HttpAgent(s.url);
    const page = await agent.follow(await agent.request(authorizeUrl(app.client_id).url));
    expect((await signInOverHttp(agent, page, person)).location).toMatch(/callback\?code=/);
    const relogin = await agent.follow(await agent.request(authorizeUrl(other.client_id, { prompt: 'login' }).url));
    expect(relogin.url).toMatch(/\/interaction\//);
    expect((await grants(s)).map((g) => g.clientId)).toEqual([app.client_id]);
  });

  it('answers a right password with the second-factor page itself; the GET page stays for method switching', async () => {
    s = await startServer('postgres');
    const app = await createClient(s.gatehouse.db.kysely, { name: 'app', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    const person = await createPerson(s, 'alan@example.com');
    const agent = new HttpAgent(s.url);
    const page = await agent.follow(await agent.request(authorizeUrl(app.client_id).url));
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    const answer = await agent.request(`/interaction/${uid}/login`, {
      form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: person.password },
    });
    expect(answer.status).toBe(200);
    expect(answer.location).toBeNull();
    expect(answer.headers.get('cache-control')).toContain('no-store');
    expect(answer.text).toContain(`action="/interaction/${uid}/totp"`);
    expect(answer.text).toContain(`data-location="/interaction/${uid}/second-factor"`);
    // The GET page: the same step, with ?method= switching to a backup code.
    const backup = await agent.request(`/interaction/${uid}/second-factor?method=backup`);
    expect(backup.status).toBe(200);
    expect(backup.text).toContain(`action="/interaction/${uid}/backup-code"`);
    // The token of the POST answer works for the next step.
    const done = await agent.follow(
      await agent.request(`/interaction/${uid}/backup-code`, {
        form: { _csrf: formField(answer.text, '_csrf')!, code: person.backupCodes[0]! },
      }),
    );
    expect(done.location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
  });
});

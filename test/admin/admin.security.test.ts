// The admin console attacked over plain HTTP (no browser): CSRF, non-owners, stale sign-ins,
// demoted and disabled owners, the sign-in callback, the last owner, and audit records for each
// refusal. Against PostgreSQL; the sign-in is the real one (code + PKCE through Gatehouse).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { disableAccount, getAccount, setRole } from '../../src/accounts/accounts.service.ts';
import { listAudit } from '../../src/audit/query.ts';
import { ADMIN_CLIENT_ID } from '../../src/admin/admin-client.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { alertText, formField, HttpAgent } from '../helpers/http-signin.ts';
import { adminOverHttp, signInOverHttp } from '../helpers/people.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const csrfOf = (html: string) => formField(html, '_csrf')!;

async function events(s: TestServer, action: string, actor?: string) {
  return (await listAudit(s.gatehouse.db.kysely, { action, ...(actor ? { actor } : {}), limit: 50 })).events;
}

describe('admin console under attack (PostgreSQL)', () => {
  let s: TestServer;
  let owner: TestPerson;
  let target: TestPerson;
  let ownerAgent: HttpAgent;
  let ownerCsrf: string;

  beforeAll(async () => {
    s = await startServer('postgres');
    owner = await createPerson(s, 'owner@example.com', 'owner');
    target = await createPerson(s, 'target@example.com', 'operator');
    const { agent, landed } = await adminOverHttp(s, owner);
    expect(landed.url).toBe(`${s.url}/admin/users`);
    ownerAgent = agent;
    ownerCsrf = csrfOf(landed.text);
  });
  afterAll(async () => s?.close());

  it('signs in as a public client with PKCE, nonce and state, and keeps only a hash of its session cookie', async () => {
    const agent = new HttpAgent(s.url);
    const start = await agent.request('/admin/login?return_to=/admin/keys');
    expect(start.status).toBe(302);
    const auth = new URL(start.location!);
    expect(auth.origin + auth.pathname).toBe(`${s.url}/auth`);
    expect(Object.fromEntries(auth.searchParams)).toMatchObject({
      client_id: ADMIN_CLIENT_ID,
      response_type: 'code',
      code_challenge_method: 'S256',
      redirect_uri: `${s.url}/admin/callback`,
    });
    for (const p of ['state', 'nonce', 'code_challenge']) expect(auth.searchParams.get(p)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const loginCookie = start.headers.getSetCookie().find((c) => c.startsWith('gh_admin_login='))!;
    expect(loginCookie).toMatch(/path=\/admin/i);
    expect(loginCookie).toMatch(/httponly/i);
    expect(loginCookie).toMatch(/samesite=lax/i);
    // The sealed cookie does not show the verifier or the nonce.
    expect(loginCookie).not.toContain(auth.searchParams.get('nonce')!);

    const client = await s.gatehouse.db.kysely
      .selectFrom('client')
      .selectAll()
      .where('client_id', '=', ADMIN_CLIENT_ID)
      .executeTakeFirstOrThrow();
    expect(client.metadata).toMatchObject({
      token_endpoint_auth_method: 'none',
      redirect_uris: [`${s.url}/admin/callback`],
      grant_types: ['authorization_code'],
    });
    expect(client.secret_hash).toBeNull();

    const rows = await s.gatehouse.db.kysely.selectFrom('admin_session').selectAll().where('account_id', '=', owner.id).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
    expect(rows[0]!.acr).toBe('urn:gatehouse:acr:mfa');
    const cookie = /gh_admin=([^;]+)/.exec(ownerAgent.jar.header())![1]!;
    expect(rows[0]!.id).not.toBe(cookie);
    expect(JSON.stringify(rows)).not.toContain(cookie);
  });

  it('refuses a POST without the CSRF token, and one sent from another site', async () => {
    const page = `/admin/users/${target.id}/role`;
    const none = await ownerAgent.request(page, { form: { role: 'admin' } });
    expect(none.status).toBe(403);
    const foreign = await ownerAgent.request(page, {
      form: { role: 'admin', _csrf: ownerCsrf },
      headers: { origin: 'https://evil.example' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.text).toMatch(/sent from another site/);
    // A token from another browser does not fit this one's cookie.
    const other = await adminOverHttp(s, await createPerson(s, 'owner-other@example.com', 'owner'));
    const swapped = await ownerAgent.request(page, { form: { role: 'admin', _csrf: csrfOf(other.landed.text) } });
    expect(swapped.status).toBe(403);
    expect((await getAccount(s.gatehouse.db.kysely, target.id)).role).toBe('operator');
    expect(await events(s, 'user.role_change')).toHaveLength(0);
    // The same form with the token goes through: the refusals above were the token's doing.
    const ok = await ownerAgent.request(page, { form: { role: 'viewer', _csrf: ownerCsrf } });
    expect(ok.status).toBe(303);
    expect((await getAccount(s.gatehouse.db.kysely, target.id)).role).toBe('viewer');
  });

  it('refuses an operator at the door, and creates no session for them', async () => {
    const operator = await createPerson(s, 'operator@example.com', 'operator');
    const { agent, landed } = await adminOverHttp(s, operator);
    expect(landed.status).toBe(403);
    expect(alertText(landed.text)).toBe('Your account does not have access to the admin console.');
    expect(landed.text).toContain('operator@example.com');
    const rows = await s.gatehouse.db.kysely.selectFrom('admin_session').select('id').where('account_id', '=', operator.id).execute();
    expect(rows).toHaveLength(0);
    const again = await agent.request('/admin/users');
    expect(again.status).toBe(303);
    expect(again.location).toMatch(/^\/admin\/login\?/);
  });

  it('lets an auditor read the audit log and nothing else, refusing changes at the server and recording the refusal', async () => {
    const auditor = await createPerson(s, 'auditor@example.com', 'auditor');
    const { agent, landed } = await adminOverHttp(s, auditor);
    expect(landed.url).toBe(`${s.url}/admin/audit`);
    expect(landed.status).toBe(200);
    expect(landed.text).not.toContain('href="/admin/users"');
    const users = await agent.request('/admin/users');
    expect(users.status).toBe(403);
    expect(alertText(users.text)).toMatch(/can read the audit log, but not manage/);
    const before = (await getAccount(s.gatehouse.db.kysely, target.id)).role;
    const post = await agent.request(`/admin/users/${target.id}/role`, { form: { role: 'owner', _csrf: csrfOf(landed.text) } });
    expect(post.status).toBe(403);
    expect((await getAccount(s.gatehouse.db.kysely, target.id)).role).toBe(before);
    for (const path of [
      '/admin/clients',
      '/admin/keys/rotate',
      '/admin/keys/revoke',
      `/admin/users/${target.id}/disable`,
      '/admin/users/invite',
    ]) {
      expect(
        (await agent.request(path, { form: { _csrf: csrfOf(landed.text), name: 'x', email: 'x@example.com', role: 'owner' } })).status,
      ).toBe(403);
    }
    const denied = await events(s, 'user.role_change', auditor.id);
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({
      outcome: 'denied',
      target: target.id,
      actor: auditor.id,
      requestId: post.headers.get('x-request-id'),
    });
    expect(denied[0]!.ip).toMatch(/127\.0\.0\.1|::1/);
    expect((await events(s, 'client.create', auditor.id))[0]).toMatchObject({ outcome: 'denied' });
  });

  it('takes access away at the next request from an owner who is demoted, and signs out one who is disabled', async () => {
    const second = await createPerson(s, 'second-owner@example.com', 'owner');
    const { agent } = await adminOverHttp(s, second);
    expect((await agent.request('/admin/users')).status).toBe(200);
    await setRole(s.gatehouse.db.kysely, second.id, 'admin');
    expect((await agent.request('/admin/users')).status).toBe(403);
    await setRole(s.gatehouse.db.kysely, second.id, 'owner');
    expect((await agent.request('/admin/users')).status).toBe(200);
    await disableAccount(s.gatehouse.db.kysely, second.id);
    const after = await agent.request('/admin/users');
    expect(after.status).toBe(303);
    expect(after.location).toMatch(/^\/admin\/login/);
    expect(await s.gatehouse.db.kysely.selectFrom('admin_session').select('id').where('account_id', '=', second.id).execute()).toHaveLength(
      0,
    );
  });

  it('ends the console session with "end all sessions"', async () => {
    const third = await createPerson(s, 'third-owner@example.com', 'owner');
    const { agent } = await adminOverHttp(s, third);
    expect((await agent.request('/admin/users')).status).toBe(200);
    const ended = await ownerAgent.request(`/admin/users/${third.id}/end-sessions`, { form: { _csrf: ownerCsrf } });
    expect(ended.status).toBe(303);
    expect((await agent.request('/admin/users')).status).toBe(303);
  });

  it('sends a stale sign-in to sign in again (max_age=300) before a change, then back to the page', async () => {
    const fourth = await createPerson(s, 'fourth-owner@example.com', 'owner');
    const { agent, landed } = await adminOverHttp(s, fourth);
    const db = s.gatehouse.db.kysely;
    await db
      .updateTable('admin_session')
      .set({ auth_time: new Date(Date.now() - 10 * 60_000) })
      .where('account_id', '=', fourth.id)
      .execute();
    const page = await agent.request(`/admin/users/${target.id}`);
    expect(page.text).toMatch(/more than 5 minutes old/);
    const refused = await agent.request(`/admin/users/${target.id}/role`, { form: { role: 'admin', _csrf: csrfOf(landed.text) } });
    expect(refused.status).toBe(303);
    const login = new URL(refused.location!, s.url);
    expect(login.pathname).toBe('/admin/login');
    expect(login.searchParams.get('max_age')).toBe('300');
    expect(login.searchParams.get('return_to')).toBe(`/admin/users/${target.id}?done=reauth`);
    expect((await getAccount(db, target.id)).role).not.toBe('admin');

    // Gatehouse's own sign-in session is older than 5 minutes too: the person must sign in again.
    await sql`update oidc_payload set payload = jsonb_set(payload, '{loginTs}', to_jsonb(${Math.floor(Date.now() / 1000) - 600}::int)) where model = 'Session' and payload->>'accountId' = ${fourth.id}`.execute(
      db,
    );
    const toAuth = await agent.request(refused.location!);
    expect(new URL(toAuth.location!).searchParams.get('max_age')).toBe('300');
    const signIn = await agent.follow(toAuth);
    expect(signIn.url).toMatch(/\/interaction\//);
    const back = await signInOverHttp(agent, signIn, fourth);
    expect(back.url).toBe(`${s.url}/admin/users/${target.id}?done=reauth`);
    expect(back.text).toContain('You signed in again. Make your change again.');
    const ok = await agent.request(`/admin/users/${target.id}/role`, { form: { role: 'admin', _csrf: csrfOf(back.text) } });
    expect(ok.status).toBe(303);
    expect((await getAccount(db, target.id)).role).toBe('admin');
  });

  it("refuses a callback that does not answer this browser's sign-in", async () => {
    const stranger = new HttpAgent(s.url);
    const noCookie = await stranger.request('/admin/callback?code=abc&state=def&iss=' + encodeURIComponent(s.url));
    expect(noCookie.status).toBe(400);
    expect(alertText(noCookie.text)).toMatch(/expired or was started in another window/);
    await stranger.request('/admin/login');
    const wrongState = await stranger.request('/admin/callback?code=abc&state=def&iss=' + encodeURIComponent(s.url));
    expect(wrongState.status).toBe(400);
    // A forged code with the right state: the token endpoint refuses it.
    const start = await stranger.request('/admin/login');
    const state = new URL(start.location!).searchParams.get('state')!;
    const forged = await stranger.request(`/admin/callback?code=forged&state=${state}&iss=${encodeURIComponent(s.url)}`);
    expect(forged.status).toBe(400);
    expect(alertText(forged.text)).toMatch(/token endpoint refused the code/);
    const start2 = await stranger.request('/admin/login');
    const state2 = new URL(start2.location!).searchParams.get('state')!;
    const mixup = await stranger.request(`/admin/callback?code=x&state=${state2}&iss=${encodeURIComponent('https://evil.example')}`);
    expect(mixup.status).toBe(400);
    expect(await s.gatehouse.db.kysely.selectFrom('admin_session').select('id').execute()).not.toHaveLength(0);
  });

  it('never redirects outside the console after sign-in', async () => {
    // The owner's browser still has its Gatehouse session: each sign-in completes without a page.
    for (const evil of ['https://evil.example/', '//evil.example/admin', '/\\evil.example', '/admin/callback?code=x', '/adminx']) {
      const landed = await ownerAgent.follow(await ownerAgent.request(`/admin/login?return_to=${encodeURIComponent(evil)}`));
      expect(landed.url, evil).toBe(`${s.url}/admin/users`);
      expect(landed.status).toBe(200);
    }
    const kept = await ownerAgent.follow(
      await ownerAgent.request(`/admin/login?return_to=${encodeURIComponent('/admin/audit?action=user.role_change')}`),
    );
    expect(kept.url).toBe(`${s.url}/admin/audit?action=user.role_change`);
    ownerCsrf = csrfOf(kept.text);
  });

  it('signs out of the console and of Gatehouse', async () => {
    const fifth = await createPerson(s, 'fifth-owner@example.com', 'owner');
    const { agent, landed } = await adminOverHttp(s, fifth);
    const out = await agent.request('/admin/logout', { form: { _csrf: csrfOf(landed.text) } });
    expect(out.status).toBe(303);
    expect(out.location).toMatch(/^\/session\/end\?client_id=gatehouse-admin/);
    // Gatehouse asks to confirm, then returns to the console's signed-out page.
    const confirm = await agent.follow(out);
    expect(confirm.status).toBe(200);
    const form = /<form[^>]*id="op.logoutForm"[^>]*>([\s\S]*?)<\/form>/.exec(confirm.text)!;
    const action = /action="([^"]+)"/.exec(form[0])![1]!;
    const fields = Object.fromEntries([...form[1]!.matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    const done = await agent.follow(await agent.request(action, { form: { ...fields, logout: 'yes' } }));
    expect(done.url).toBe(`${s.url}/admin/signed-out`);
    expect(done.text).toContain('You are signed out of the admin console.');
    // Out of Gatehouse too: coming back means signing in, not walking back in.
    expect((await agent.follow(await agent.request('/admin'))).url).toMatch(/\/interaction\/[^/]+$/);
    expect(await s.gatehouse.db.kysely.selectFrom('admin_session').select('id').where('account_id', '=', fifth.id).execute()).toHaveLength(
      0,
    );
    expect((await agent.request('/admin/users')).status).toBe(303);
    expect((await events(s, 'session.end', fifth.id))[0]).toMatchObject({ outcome: 'success', details: { console: 'admin' } });
  });

  it("refuses key rotation while the next key is too new, with the service's reason", async () => {
    const page = await ownerAgent.request('/admin/keys');
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<span class="status current">current<\/span>/);
    const r = await ownerAgent.request('/admin/keys/rotate', { form: { _csrf: ownerCsrf } });
    expect(r.status).toBe(409);
    expect(alertText(r.text)).toMatch(/less than the JWKS cache lifetime/);
    expect((await events(s, 'key.rotate', owner.id))[0]).toMatchObject({ outcome: 'failure', details: { error: 'KEY_ROTATION_TOO_SOON' } });
  });
});

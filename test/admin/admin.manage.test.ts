// An owner managing people, clients and keys from the console over HTTP, on PostgreSQL: every
// change lands in the audit log with actor, source IP, target, outcome and request id; no secret
// ever reaches the log or the server's output; a person's next refreshed token shows the change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { decodeJwt } from 'jose';
import { getAccount } from '../../src/accounts/accounts.service.ts';
import { findValidInvitation } from '../../src/accounts/invitations.ts';
import { listAudit } from '../../src/audit/query.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { factorSummary } from '../../src/mfa/factors.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { adminOverHttp, signInOverHttp } from '../helpers/people.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';
import { tamper } from '../audit/helpers.ts';

const csrfOf = (html: string) => formField(html, '_csrf')!;
const unescape = (t: string) =>
  t
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
const alertText = (html: string) => {
  const m = /<p role="alert"[^>]*>([^<]*)<\/p>/.exec(html);
  return m ? unescape(m[1]!) : null;
};
const inputById = (html: string, id: string) =>
  new RegExp(`id="${id}"[^>]*value="([^"]*)"`).exec(html)?.[1]?.replace(/&amp;/g, '&') ?? null;

describe('an owner at the console (PostgreSQL)', () => {
  let s: TestServer;
  let owner: TestPerson;
  let agent: HttpAgent;
  let csrf: string;
  let rp: RelyingParty;
  const secrets: string[] = [];

  const post = async (path: string, form: Record<string, string> = {}) => agent.request(path, { form: { _csrf: csrf, ...form } });
  const lastEvent = async (action: string) => (await listAudit(s.gatehouse.db.kysely, { action, limit: 1 })).events[0];
  const expectRecorded = (e: Awaited<ReturnType<typeof lastEvent>>, step: Step, fields: Record<string, unknown>) => {
    expect(e).toMatchObject({ actor: owner.id, requestId: step.headers.get('x-request-id'), ...fields });
    expect(e!.ip).toMatch(/^(::ffff:)?127\.0\.0\.1$|^::1$/);
  };

  /** A person signed in to an application through Gatehouse, holding tokens. */
  async function tokensFor(person: TestPerson) {
    const flow = await rp.start({ scope: 'openid email' });
    const a = new HttpAgent(s.url);
    const end = await signInOverHttp(a, await a.follow(await a.request(flow.url)), person);
    expect(end.location).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
    return rp.finish(new URL(end.location!), flow);
  }

  beforeAll(async () => {
    // JWKS cache lifetime 0: a next key may be promoted at once (rotation is tested here).
    s = await startServer('postgres', { GATEHOUSE_JWKS_MAX_AGE: '0' });
    owner = await createPerson(s, 'owner@example.com', 'owner');
    const signedIn = await adminOverHttp(s, owner);
    agent = signedIn.agent;
    csrf = csrfOf(signedIn.landed.text);
    const port = await freePort();
    const app = await createClient(s.gatehouse.db.kysely, {
      name: 'Agent console',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [`http://127.0.0.1:${port}/callback`],
    });
    rp = await startRelyingParty(s.url, app, port);
  });
  afterAll(async () => {
    await rp?.close();
    await s?.close();
  });

  it('cannot demote or disable the last owner: the page says why, and the refusal is recorded', async () => {
    const demote = await post(`/admin/users/${owner.id}/role`, { role: 'admin' });
    expect(demote.status).toBe(409);
    expect(alertText(demote.text)).toBe('This is the last active owner. Make someone else an owner first.');
    expectRecorded(await lastEvent('user.role_change'), demote, { outcome: 'failure', target: owner.id, details: { error: 'LAST_OWNER' } });
    const disable = await post(`/admin/users/${owner.id}/disable`);
    expect(disable.status).toBe(409);
    expect((await getAccount(s.gatehouse.db.kysely, owner.id)).role).toBe('owner');
    expect((await getAccount(s.gatehouse.db.kysely, owner.id)).status).toBe('active');
  });

  it('invites a user: the link is shown once and works; the event has no token', async () => {
    expect((await agent.request('/admin/users/invite')).status).toBe(200);
    const r = await post('/admin/users/invite', {
      email: 'New.Person@Example.com',
      role: 'operator',
      permissions: 'agent:summarizer:inject, thread:*:view',
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const link = inputById(r.text, 'once-link')!;
    expect(link).toMatch(new RegExp(`^${s.url}/enroll/[A-Za-z0-9_-]{43}$`));
    const token = link.split('/').pop()!;
    secrets.push(token);
    expectRecorded(await lastEvent('invitation.create'), r, {
      outcome: 'success',
      target: 'new.person@example.com',
      details: {
        role: 'operator',
        permissions: ['agent:summarizer:inject', 'thread:*:view'],
        purpose: 'enroll',
        email: 'new.person@example.com',
      },
    });
    expect(await findValidInvitation(s.gatehouse.db.kysely, token)).toMatchObject({
      email: 'new.person@example.com',
      role: 'operator',
      purpose: 'enroll',
    });
    const enroll = await new HttpAgent(s.url).request(link);
    expect(enroll.status).toBe(200);
    expect(enroll.text).toContain('Set up your account');
    // Shown once: nowhere else in the console.
    for (const page of ['/admin/users', '/admin/audit']) expect((await agent.request(page)).text).not.toContain(token);

    const badPermission = await post('/admin/users/invite', { email: 'x@example.com', role: 'viewer', permissions: 'agent:x' });
    expect(badPermission.status).toBe(400);
    expect(alertText(badPermission.text)).toMatch(/"agent:x" is not a permission/);
    const badRole = await post('/admin/users/invite', { email: 'x@example.com', role: 'emperor' });
    expect(badRole.status).toBe(400);
    const taken = await post('/admin/users/invite', { email: owner.email, role: 'viewer' });
    expect(taken.status).toBe(409);
    expect(alertText(taken.text)).toBe(`${owner.email} already has an account.`);
    expect(taken.text).toContain(`value="${owner.email}"`); // what was typed is kept
  });

  it("shows each change in the person's next refreshed token; a disabled person's refresh fails at once", async () => {
    const person = await createPerson(s, 'pat@example.com', 'operator');
    let tokens = await tokensFor(person);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ roles: ['operator'], permissions: [] });

    const perms = await post(`/admin/users/${person.id}/permissions`, {
      permissions: 'agent:summarizer:inject\nthread:*:view, config:prompts:read',
    });
    expect(perms.status).toBe(303);
    expect(perms.location).toBe(`/admin/users/${person.id}?done=permissions`);
    expectRecorded(await lastEvent('user.permission_change'), perms, {
      outcome: 'success',
      target: person.id,
      details: { from: [], to: ['agent:summarizer:inject', 'thread:*:view', 'config:prompts:read'] },
    });
    tokens = await rp.refresh(tokens.refresh_token!);
    expect(decodeJwt(tokens.access_token).permissions).toEqual(['agent:summarizer:inject', 'thread:*:view', 'config:prompts:read']);

    const bad = await post(`/admin/users/${person.id}/permissions`, { permissions: 'agent:ok:inject\nnope' });
    expect(bad.status).toBe(400);
    expect(alertText(bad.text)).toMatch(/"nope" is not a permission/);
    expect(bad.text).toContain('agent:ok:inject\nnope'); // kept for correction
    expect((await getAccount(s.gatehouse.db.kysely, person.id)).permissions).toHaveLength(3);

    const role = await post(`/admin/users/${person.id}/role`, { role: 'admin' });
    expect(role.status).toBe(303);
    expectRecorded(await lastEvent('user.role_change'), role, {
      outcome: 'success',
      target: person.id,
      details: { from: 'operator', to: 'admin' },
    });
    tokens = await rp.refresh(tokens.refresh_token!);
    expect(decodeJwt(tokens.access_token).roles).toEqual(['admin']);

    const disable = await post(`/admin/users/${person.id}/disable`);
    expect(disable.status).toBe(303);
    expectRecorded(await lastEvent('user.disable'), disable, { outcome: 'success', target: person.id });
    await expect(rp.refresh(tokens.refresh_token!)).rejects.toThrow();
    const page = await agent.request(disable.location!);
    expect(page.text).toContain('Account disabled. Its sessions ended');
    expect(page.text).toContain('Enable account');

    const enable = await post(`/admin/users/${person.id}/enable`);
    expect(enable.status).toBe(303);
    expectRecorded(await lastEvent('user.enable'), enable, { outcome: 'success', target: person.id });
    tokens = await tokensFor(person);

    const reset = await post(`/admin/users/${person.id}/reset-factors`);
    expect(reset.status).toBe(200);
    const link = inputById(reset.text, 'once-link')!;
    expect(link).toMatch(/\/enroll\/[A-Za-z0-9_-]{43}$/);
    secrets.push(link.split('/').pop()!);
    expect(await findValidInvitation(s.gatehouse.db.kysely, link.split('/').pop())).toMatchObject({
      email: person.email,
      purpose: 'reset',
      account_id: person.id,
    });
    expect(await factorSummary(s.gatehouse.db.kysely, person.id)).toEqual({ totp: false, passkeys: 0, backup_codes_left: 0 });
    await expect(rp.refresh(tokens.refresh_token!)).rejects.toThrow();
    expectRecorded(await lastEvent('factor.reset'), reset, {
      outcome: 'success',
      target: person.id,
      details: { authenticator_apps: 1, backup_set: 10, passkeys: 0 },
    });
    expectRecorded(await lastEvent('invitation.create'), reset, {
      outcome: 'success',
      target: person.email,
      details: { purpose: 'reset' },
    });

    const other = await createPerson(s, 'sam@example.com', 'viewer');
    const otherTokens = await tokensFor(other);
    const end = await post(`/admin/users/${other.id}/end-sessions`);
    expect(end.status).toBe(303);
    expectRecorded(await lastEvent('session.end_all'), end, { outcome: 'success', target: other.id });
    await expect(rp.refresh(otherTokens.refresh_token!)).rejects.toThrow();

    const unknown = await post('/admin/users/usr_doesnotexist000000000/role', { role: 'viewer' });
    expect(unknown.status).toBe(404);
  });

  it('lists users with status, role, factors and last sign-in, searchable by email, role and status', async () => {
    const all = await agent.request('/admin/users');
    expect(all.text).toContain('owner@example.com');
    expect(all.text).toMatch(/<td data-label="Factors">authenticator app, \d+ backup codes<\/td>/);
    expect(all.text).toMatch(/<td data-label="Last sign-in"><time datetime="/);
    const byEmail = await agent.request('/admin/users?q=PAT');
    expect(byEmail.text).toContain('pat@example.com');
    expect(byEmail.text).not.toContain('owner@example.com</a>');
    const byRole = await agent.request('/admin/users?role=viewer');
    expect(byRole.text).toContain('sam@example.com');
    expect(byRole.text).not.toContain('pat@example.com');
    const byStatus = await agent.request('/admin/users?status=disabled');
    expect(byStatus.text).toContain('No user matches.');
  });

  it('creates a service client with roles, permissions and networks: its secret is shown once and works; rotate; delete', async () => {
    const created = await post('/admin/clients', {
      name: 'Summarizer',
      type: 'service',
      auth: 'client_secret_basic',
      roles: 'operator',
      permissions: 'agent:summarizer:inject',
      cidrs: '127.0.0.0/8\n::1/128',
    });
    expect(created.status).toBe(200);
    const clientId = /<code data-client-id>([^<]+)<\/code>/.exec(created.text)![1]!;
    const secret = inputById(created.text, 'client-secret')!;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    secrets.push(secret);
    expectRecorded(await lastEvent('client.create'), created, {
      outcome: 'success',
      details: {
        client_id: clientId,
        kind: 'service',
        roles: ['operator'],
        permissions: ['agent:summarizer:inject'],
        allowed_cidrs: ['127.0.0.0/8', '::1/128'],
        grants: ['client_credentials'],
      },
    });
    const token = async (sec: string) =>
      fetch(`${s.url}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${sec}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials',
      });
    const t1 = await token(secret);
    expect(t1.status).toBe(200);
    expect(decodeJwt(((await t1.json()) as any).access_token)).toMatchObject({
      roles: ['operator'],
      permissions: ['agent:summarizer:inject'],
    });
    const list = await agent.request('/admin/clients');
    expect(list.text).toContain(clientId);
    expect(list.text).not.toContain(secret);

    const rotated = await post(`/admin/clients/${clientId}/rotate-secret`);
    expect(rotated.status).toBe(200);
    const secret2 = inputById(rotated.text, 'client-secret')!;
    secrets.push(secret2);
    expect(secret2).not.toBe(secret);
    expect(rotated.text).toMatch(/previous secret keeps working until/);
    expectRecorded(await lastEvent('client.secret_rotate'), rotated, { outcome: 'success', target: clientId });
    await new Promise((r) => setTimeout(r, 400)); // the client cache follows the change feed
    expect((await token(secret2)).status).toBe(200);

    const refusedBuiltIn = await post('/admin/clients/gatehouse-admin/delete');
    expect(refusedBuiltIn.status).toBe(400);
    expect(alertText(refusedBuiltIn.text)).toMatch(/built into Gatehouse/);
    const del = await post(`/admin/clients/${clientId}/delete`);
    expect(del.status).toBe(303);
    expectRecorded(await lastEvent('client.delete'), del, { outcome: 'success', target: clientId });
    await new Promise((r) => setTimeout(r, 400));
    expect((await token(secret2)).status).toBe(401);
  });

  it('creates a public browser application with redirect URIs (no secret), and keeps the form on an error', async () => {
    const bad = await post('/admin/clients', {
      name: 'Broken',
      type: 'browser',
      auth: 'none',
      redirect_uris: 'http://evil.example/cb',
      refresh: '1',
    });
    expect(bad.status).toBe(400);
    expect(alertText(bad.text)).toMatch(/redirectUris/);
    expect(bad.text).toContain('http://evil.example/cb');
    const ok = await post('/admin/clients', {
      name: 'Dashboard',
      type: 'browser',
      auth: 'none',
      redirect_uris: 'https://dash.example.com/cb',
      refresh: '1',
    });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('This client has no secret.');
    expect((await lastEvent('client.create'))!.details).toMatchObject({
      kind: 'browser',
      auth: 'none',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: ['https://dash.example.com/cb'],
    });
  });

  it('rotates signing keys now once the next key has been published long enough', async () => {
    const before = (
      await s.gatehouse.db.kysely.selectFrom('signing_key').select(['kid', 'state']).where('state', '=', 'current').execute()
    ).map((k) => k.kid);
    const r = await post('/admin/keys/rotate');
    expect(r.status).toBe(303);
    expect(r.location).toBe('/admin/keys?done=keys_rotated');
    const after = await s.gatehouse.db.kysely.selectFrom('signing_key').select(['kid', 'state']).execute();
    for (const kid of before) expect(after.find((k) => k.kid === kid)!.state).toBe('retired');
    const e = await lastEvent('key.rotate');
    expectRecorded(e, r, { outcome: 'success', target: 'signing-keys' });
    expect((e!.details.rotated as any[]).map((x) => x.retired).sort()).toEqual([...before].sort());
    // The console still signs in after a rotation (ID tokens from the new keys verify).
    await new Promise((res) => setTimeout(res, 400));
    const again = await agent.follow(await agent.request('/admin/login'));
    expect(again.url).toBe(`${s.url}/admin/users`);
    csrf = csrfOf(again.text);
  });

  it('never writes a secret to the audit log or the server output', async () => {
    // The console's own session cookie is a credential too.
    secrets.push(/gh_admin=([^;]+)/.exec(agent.jar.header())![1]!);
    expect(secrets).toHaveLength(5);
    const { rows } = await sql<{ row: string }>`select row_to_json(a)::text as row from audit_event a`.execute(s.gatehouse.db.kysely);
    const log = rows.map((r) => r.row).join('\n');
    const output = s.logs.join('\n');
    for (const secret of secrets) {
      expect(log).not.toContain(secret);
      const line = s.logs.find((l) => l.includes(secret));
      expect(line ?? null, secret).toBeNull();
      expect(output).not.toContain(secret);
    }
  });

  it('browses the audit log with filters and pages, and names the first bad event when a row is altered', async () => {
    const filtered = await agent.request(`/admin/audit?action=user.role_change&outcome=success&actor=${owner.id}`);
    expect(filtered.status).toBe(200);
    expect(filtered.text).toContain('data-chain="ok"');
    const seqs = [...filtered.text.matchAll(/<tr data-seq="(\d+)">/g)].map((m) => Number(m[1]));
    expect(seqs.length).toBeGreaterThan(0);
    expect(filtered.text.match(/<td data-label="Action">([^<]+)<\/td>/g)!.every((m) => m.includes('user.role_change'))).toBe(true);

    const first = await agent.request('/admin/audit');
    const page1 = [...first.text.matchAll(/<tr data-seq="(\d+)">/g)].map((m) => Number(m[1]));
    expect(page1).toEqual([...page1].sort((a, b) => b - a)); // newest first
    const total = (await verifyAudit(s.gatehouse.db.kysely)).events;
    expect(page1[0]).toBe(total);
    if (total > 50) {
      const older = /<a href="([^"]+)">Older events<\/a>/.exec(first.text)![1]!.replace(/&amp;/g, '&');
      const page2 = [...(await agent.request(older)).text.matchAll(/<tr data-seq="(\d+)">/g)].map((m) => Number(m[1]));
      expect(page2[0]).toBe(page1[page1.length - 1]! - 1);
    } else {
      expect(first.text).not.toContain('Older events');
    }

    await tamper(s.gatehouse.db.kysely, `update audit_event set details = '{"altered": true}' where seq = 3`);
    const broken = await agent.request('/admin/audit');
    expect(broken.text).toContain('data-chain="broken"');
    expect(broken.text).toContain('data-first-bad-seq="3"');
    expect(alertText(broken.text)).toMatch(/the first bad event is 3/);
  });
});

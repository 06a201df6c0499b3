// The admin console in real headless Chromium: an owner enrolled through the invitation pages
// signs in to /admin through Gatehouse itself (code + PKCE), invites a person who enrolls in a
// second browser, changes their role, and that person's next refreshed token carries it. Then
// the refusals: an operator at the door, a stale sign-in before a change, a POST without the
// CSRF token and one from another site; the audit log records each action and verifies.
import fs from 'node:fs';
import path from 'node:path';
import { gatehouse } from '../helpers/cli.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createInvitation } from '../../src/accounts/invitations.ts';
import { getAccount } from '../../src/accounts/accounts.service.ts';
import { listAudit } from '../../src/audit/query.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { launchBrowser } from '../helpers/browser.ts';
import type { Backend } from '../helpers/db.ts';
import { enrollFromLink, signInOnPage, type Enrolled } from '../helpers/people.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

const AUDIENCE = 'https://agents.example.com';
const SCREENSHOT = path.resolve('docs/admin-users.png');

describe.each(['postgres', 'pglite'] as Backend[])('the admin console in a browser on %s', (backend) => {
  let browser: Browser;
  let s: TestServer;
  let rp: RelyingParty;
  let ownerContext: BrowserContext;
  let admin: Page;
  let owner: Enrolled & { email: string; id: string };
  const person = { email: `pat-${backend}@example.com`, id: '' };
  const requestIds: Record<string, string> = {};
  let inviteToken = '';

  /** Submit a form by its button and keep the request id of the POST's answer. */
  async function submit(page: Page, button: string, label: string) {
    const answer = page.waitForResponse((r) => r.request().method() === 'POST');
    await page.getByRole('button', { name: button, exact: true }).click();
    requestIds[label] = (await (await answer).headerValue('x-request-id')) ?? '';
    await page.waitForLoadState();
  }

  beforeAll(async () => {
    [browser, s] = await Promise.all([launchBrowser(), startServer(backend)]);
    const port = await freePort();
    const app = await createClient(s.gatehouse.db.kysely, {
      name: 'Agent console',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [`http://127.0.0.1:${port}/callback`],
    });
    rp = await startRelyingParty(s.url, app, port);
    ownerContext = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    admin = await ownerContext.newPage();
    const inv = await createInvitation(s.gatehouse.db.kysely, { email: `owner-${backend}@example.com`, role: 'owner' });
    const enrolled = await enrollFromLink(admin, `${s.url}/enroll/${inv.token}`);
    const row = await s.gatehouse.db.kysely.selectFrom('account').select('id').where('email', '=', inv.email).executeTakeFirstOrThrow();
    owner = { ...enrolled, email: inv.email, id: row.id };
  });
  afterAll(async () => {
    await browser?.close();
    await rp?.close();
    await s?.close();
  });

  it("an owner signs in, invites a person who enrolls, changes their role, and the person's next refreshed token carries it", async () => {
    await admin.goto(`${s.url}/admin`);
    // Not signed in to the console: through Gatehouse's own sign-in page.
    await expect(admin.getByRole('heading', { name: 'Sign in' }).isVisible()).resolves.toBe(true);
    await signInOnPage(admin, owner.email, owner.nextCode);
    await admin.waitForURL(`${s.url}/admin/users`);
    await expect(admin.getByRole('heading', { name: 'Users' }).isVisible()).resolves.toBe(true);

    await admin.getByRole('link', { name: 'Invite a user' }).click();
    await admin.getByLabel('Email').fill(person.email);
    await admin.getByLabel('Role').selectOption('operator');
    await admin.getByLabel('Permissions').fill('agent:summarizer:inject');
    await submit(admin, 'Create invitation', 'invite');
    const link = await admin.getByLabel('Invitation link').inputValue();
    expect(link).toMatch(new RegExp(`^${s.url}/enroll/[A-Za-z0-9_-]{43}$`));
    inviteToken = link.split('/').pop()!;

    // The person, in a browser of their own.
    const personContext = await browser.newContext();
    const personPage = await personContext.newPage();
    const enrolled = await enrollFromLink(personPage, link);
    const flow = await rp.start();
    await personPage.goto(flow.url);
    await signInOnPage(personPage, person.email, enrolled.nextCode);
    await personPage.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    const tokens = await rp.finish(new URL(personPage.url()), flow);
    const verifier = createVerifier({ issuer: s.url, audience: AUDIENCE });
    const first = await verifier.verify(tokens.access_token);
    expect(first).toMatchObject({ roles: ['operator'], permissions: ['agent:summarizer:inject'] });
    person.id = first.sub;

    // An operator who opens /admin is refused, with a page that says why.
    const door = await personPage.goto(`${s.url}/admin`);
    expect(door!.status()).toBe(403);
    await expect(personPage.getByRole('alert').textContent()).resolves.toBe('Your account does not have access to the admin console.');
    await personContext.close();

    // The owner changes the role.
    await admin.goto(`${s.url}/admin/users`);
    await admin.getByRole('link', { name: person.email }).click();
    await admin.getByLabel('Role').selectOption('admin');
    await submit(admin, 'Change role', 'role');
    await expect(admin.getByRole('status').textContent()).resolves.toMatch(/Role changed/);

    const refreshed = await rp.refresh(tokens.refresh_token!);
    expect(await verifier.verify(refreshed.access_token)).toMatchObject({
      sub: person.id,
      roles: ['admin'],
      permissions: ['agent:summarizer:inject'],
    });

    await admin.goto(`${s.url}/admin/users`);
    expect(await admin.getByRole('table', { name: 'Users' }).getByRole('row').count()).toBe(3); // header, owner, person
    if (backend === 'postgres') {
      const before = fs.existsSync(SCREENSHOT) ? fs.statSync(SCREENSHOT).mtimeMs : 0;
      await admin.setViewportSize({ width: 1100, height: 520 });
      await admin.screenshot({ path: SCREENSHOT, fullPage: true });
      await admin.setViewportSize({ width: 1200, height: 800 });
      expect(fs.statSync(SCREENSHOT).mtimeMs).toBeGreaterThan(before);
      expect(fs.readFileSync(SCREENSHOT).subarray(1, 4).toString()).toBe('PNG');
    }
  });

  it.runIf(backend === 'postgres')('sends a stale sign-in to sign in again before a role change, then brings the owner back', async () => {
    const db = s.gatehouse.db.kysely;
    // Both the console's session and Gatehouse's own sign-in session are 10 minutes old.
    await db
      .updateTable('admin_session')
      .set({ auth_time: new Date(Date.now() - 600_000) })
      .where('account_id', '=', owner.id)
      .execute();
    await sql`update oidc_payload set payload = jsonb_set(payload, '{loginTs}', to_jsonb(${Math.floor(Date.now() / 1000) - 600}::int)) where model = 'Session' and payload->>'accountId' = ${owner.id}`.execute(
      db,
    );

    await admin.goto(`${s.url}/admin/users/${person.id}`);
    await admin.getByLabel('Role').selectOption('viewer');
    await admin.getByRole('button', { name: 'Change role' }).click();
    await admin.waitForURL(/\/interaction\//);
    await expect(admin.getByRole('heading', { name: 'Sign in' }).isVisible()).resolves.toBe(true);
    expect((await getAccount(db, person.id)).role).toBe('admin');

    await signInOnPage(admin, owner.email, owner.nextCode);
    await admin.waitForURL(`${s.url}/admin/users/${person.id}?done=reauth`);
    await expect(admin.getByRole('status').textContent()).resolves.toBe('You signed in again. Make your change again.');
    await admin.getByLabel('Role').selectOption('viewer');
    await submit(admin, 'Change role', 'role-after-reauth');
    await expect(admin.getByRole('status').textContent()).resolves.toMatch(/Role changed/);
    expect((await getAccount(db, person.id)).role).toBe('viewer');
  });

  it.runIf(backend === 'postgres')('refuses a POST without the CSRF token, and a form posted from another site', async () => {
    const db = s.gatehouse.db.kysely;
    const before = (await getAccount(db, person.id)).role;
    // The owner's own cookies (session included), but no token.
    const bare = await admin.request.post(`${s.url}/admin/users/${person.id}/role`, { form: { role: 'owner' }, maxRedirects: 0 });
    expect(bare.status()).toBe(403);
    // A page elsewhere that posts a copy of the form, token and all.
    await admin.goto(`${s.url}/admin/users/${person.id}`);
    const token = await admin.locator('form[action$="/role"] input[name="_csrf"]').getAttribute('value');
    await admin.route('http://evil.example/**', (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<!doctype html><form method="post" action="${s.url}/admin/users/${person.id}/role"><input name="_csrf" value="${token}"><input name="role" value="owner"><button>Win a prize</button></form>`,
      }),
    );
    await admin.goto('http://evil.example/');
    const answer = admin.waitForResponse((r) => r.url().endsWith('/role'));
    await admin.getByRole('button', { name: 'Win a prize' }).click();
    expect((await answer).status()).toBe(403);
    expect((await getAccount(db, person.id)).role).toBe(before);
    expect(
      (await listAudit(db, { action: 'user.role_change', outcome: 'success', limit: 10 })).events.every((e) => e.details.to !== 'owner'),
    ).toBe(true);
  });

  it('records every action with actor, source IP, target, outcome and request id; the chain verifies', async () => {
    const db = s.gatehouse.db.kysely;
    const [invite] = (await listAudit(db, { action: 'invitation.create', actor: owner.id, limit: 5 })).events;
    expect(invite).toMatchObject({
      outcome: 'success',
      target: person.email,
      requestId: requestIds.invite,
      details: { role: 'operator', permissions: ['agent:summarizer:inject'], purpose: 'enroll' },
    });
    expect(invite!.ip).toMatch(/127\.0\.0\.1|::1/);
    expect(inviteToken).toHaveLength(43);
    expect(JSON.stringify(invite)).not.toContain(inviteToken);
    const roleChanges = (await listAudit(db, { action: 'user.role_change', actor: owner.id, limit: 5 })).events.reverse();
    expect(roleChanges[0]).toMatchObject({
      outcome: 'success',
      target: person.id,
      requestId: requestIds.role,
      details: { from: 'operator', to: 'admin', email: person.email },
    });
    expect(roleChanges[0]!.ip).toMatch(/127\.0\.0\.1|::1/);
    if (backend === 'postgres')
      expect(roleChanges[1]).toMatchObject({
        outcome: 'success',
        requestId: requestIds['role-after-reauth'],
        details: { from: 'admin', to: 'viewer' },
      });
    const [accepted] = (await listAudit(db, { action: 'invitation.accept', target: person.id, limit: 1 })).events;
    expect(accepted).toMatchObject({ outcome: 'success', actor: person.id });

    // The audit page says the chain verifies; so does the CLI on PostgreSQL (in-process on
    // PGlite, whose database this process holds).
    await admin.goto(`${s.url}/admin/audit?action=user.role_change`);
    await expect(admin.locator('[data-chain="ok"]').textContent()).resolves.toMatch(/The audit chain verifies/);
    expect(await admin.getByRole('table', { name: 'Audit events' }).getByRole('row').count()).toBe(roleChanges.length + 1);
    if (backend === 'postgres') {
      const { code, stdout } = await gatehouse(['audit', 'verify', '--json'], {
        DATABASE_URL: s.env.DATABASE_URL!,
        GATEHOUSE_MASTER_KEY: s.env.GATEHOUSE_MASTER_KEY!,
      });
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toMatchObject({ ok: true, events: (await verifyAudit(db)).events });
    } else {
      expect(await verifyAudit(db)).toMatchObject({ ok: true });
    }
  });
});

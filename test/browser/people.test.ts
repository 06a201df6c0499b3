// People in a real browser: invitation → enrollment → sign-in through the pages, with a real OIDC
// client library as the application (code + PKCE), tokens checked as the agentserver would.
import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { authenticationOptions, relyingPartyFor, verifyAuthentication } from '../../src/mfa/webauthn.ts';
import type { Browser, Page } from 'playwright-core';
import { decodeJwt } from 'jose';
import { createInvitation } from '../../src/accounts/invitations.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPerson, totpClock } from '../helpers/accounts.ts';
import { base32Decode, enrollFromLink } from '../helpers/people.ts';
import { createRecoveryLink } from '../../src/accounts/recovery.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { addVirtualAuthenticator, launchBrowser } from '../helpers/browser.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';
import type { Backend } from '../helpers/db.ts';

const AUDIENCE = 'https://agents.example.com';
const PASSWORD = 'correct horse battery staple 42';
const NEW_PASSWORD = 'a brand new passphrase for ada 7';
/** Every secret the tests see, searched for in logs and the audit log at the end. */
const secrets: string[] = [PASSWORD, NEW_PASSWORD];
const bearerTokens: string[] = [];

export async function setup(backend: Backend) {
  const s = await startServer(backend);
  const port = await freePort();
  const app = await createClient(s.gatehouse.db.kysely, {
    name: 'Agent console',
    grants: ['authorization_code', 'refresh_token'],
    redirectUris: [`http://127.0.0.1:${port}/callback`],
    postLogoutRedirectUris: [`http://127.0.0.1:${port}/`],
  });
  const rp = await startRelyingParty(s.url, app, port);
  return { s, rp, app };
}

async function enrollWithTotp(page: Page, s: TestServer, email: string, role = 'operator') {
  const inv = await createInvitation(s.gatehouse.db.kysely, { email, role, permissions: ['agent:summarizer:inject'] });
  const enrolled = await enrollFromLink(page, `${s.url}/enroll/${inv.token}`, PASSWORD);
  secrets.push(enrolled.key, inv.token, ...enrolled.backupCodes);
  return { ...enrolled, token: inv.token };
}

async function signInWithPassword(page: Page, rp: RelyingParty, email: string, password = PASSWORD, params: Record<string, string> = {}) {
  const flow = await rp.start(params);
  await page.goto(flow.url);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  return flow;
}

/** The whole sign-in of a TOTP user, back at the application with tokens. */
async function signInWithTotp(
  page: Page,
  rp: RelyingParty,
  email: string,
  nextCode: () => Promise<string>,
  params: Record<string, string> = {},
) {
  const flow = await signInWithPassword(page, rp, email, PASSWORD, params);
  await page.getByLabel('Authentication code').fill(await nextCode());
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
  return rp.finish(new URL(page.url()), flow);
}

describe.each(['postgres', 'pglite'] as const)('people in the browser on %s', (backend) => {
  let browser: Browser;
  let ctx: Awaited<ReturnType<typeof setup>>;

  beforeAll(async () => {
    [browser, ctx] = await Promise.all([launchBrowser(), setup(backend)]);
  });
  afterAll(async () => {
    await browser?.close();
    await ctx?.rp.close();
    await ctx?.s.close();
  });

  it('invitation → enrollment with TOTP → sign-in with TOTP → tokens with amr pwd+otp', async () => {
    const { s, rp } = ctx;
    const page = await (await browser.newContext()).newPage();
    const email = `ada-${backend}@example.com`;
    const { nextCode } = await enrollWithTotp(page, s, email);

    const flow = await signInWithPassword(page, rp, email);
    await page.getByLabel('Authentication code').fill(await nextCode());
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    const tokens = await rp.finish(new URL(page.url()), flow);

    const claims = await createVerifier({ issuer: s.url, audience: AUDIENCE }).verify(tokens.access_token);
    expect(claims).toMatchObject({ roles: ['operator'], permissions: ['agent:summarizer:inject'], acr: 'urn:gatehouse:acr:mfa' });
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
    expect(claims.auth_time).toEqual(expect.any(Number));
    expect(claims.sid).toEqual(expect.any(String));
    expect(claims.sub).toMatch(/^usr_/);
    const id = tokens.claims()!;
    expect(id.email).toBe(email);
    expect(decodeJwt(tokens.id_token!).acr).toBe('urn:gatehouse:acr:mfa');
    expect(tokens.refresh_token).toBeTruthy();
  });
});

describe('people in the browser: factors and attacks (PostgreSQL)', () => {
  let browser: Browser;
  let ctx: Awaited<ReturnType<typeof setup>>;

  beforeAll(async () => {
    [browser, ctx] = await Promise.all([launchBrowser(), setup('postgres')]);
  });
  afterAll(async () => {
    await browser?.close();
    await ctx?.rp.close();
    await ctx?.s.close();
  });

  it('shows the sign-in page (screenshot for the README)', async () => {
    const page = await (await browser.newContext({ viewport: { width: 800, height: 640 } })).newPage();
    await page.goto((await ctx.rp.start()).url);
    await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeTruthy();
    await page.getByLabel('Email').waitFor();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
    fs.mkdirSync('docs', { recursive: true });
    await page.screenshot({ path: 'docs/sign-in.png' });
  });

  it('enrolls with a passkey alone and signs in usernameless: acr phishing-resistant', async () => {
    const { s, rp } = ctx;
    const context = await browser.newContext();
    const page = await context.newPage();
    const authenticator = await addVirtualAuthenticator(page);
    const inv = await createInvitation(s.gatehouse.db.kysely, { email: 'pat@example.com', role: 'admin' });
    await page.goto(`${s.url}/enroll/${inv.token}`);
    await page.getByRole('button', { name: 'Use a passkey instead of a password' }).click();
    await page.getByRole('list', { name: 'Backup codes' }).waitFor();
    const codes = await page.getByRole('list', { name: 'Backup codes' }).getByRole('listitem').allTextContents();
    expect(codes).toHaveLength(10);
    const creds = await authenticator.credentials();
    expect(creds).toHaveLength(1);
    expect(creds[0]!.isResidentCredential).toBe(true);

    // Passkey autofill (conditional mediation): the sign-in page offers the passkey in the email
    // field; Chromium's virtual authenticator answers at once, as a person picking it would.
    const flow = await rp.start();
    await page.goto(flow.url);
    await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    const tokens = await rp.finish(new URL(page.url()), flow);
    const claims = await createVerifier({ issuer: s.url, audience: AUDIENCE }).verify(tokens.access_token);
    expect(claims.acr).toBe('urn:gatehouse:acr:phr');
    expect(claims.amr).toEqual(expect.arrayContaining(['user', 'mfa']));
    expect(claims.amr!.some((m) => m === 'hwk' || m === 'swk')).toBe(true);
    expect(claims.roles).toEqual(['admin']);
    expect((await authenticator.credentials())[0]!.signCount).toBeGreaterThan(0);

    // An application asking for a phishing-resistant sign-in gets the passkey-only page: the
    // button, no password form.
    const strict = await rp.start({ acr_values: 'urn:gatehouse:acr:phr', prompt: 'login' });
    await page.goto(strict.url);
    expect(await page.getByLabel('Password').count()).toBe(0);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    const strictTokens = await rp.finish(new URL(page.url()), strict);
    expect(decodeJwt(strictTokens.access_token).acr).toBe('urn:gatehouse:acr:phr');
    await context.close();
  });

  it('refuses a passkey assertion made for another origin', async () => {
    const { s } = ctx;
    // A look-alike page on another origin with the same RP ID (localhost on another port).
    const phish = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Totally Gatehouse</title>'),
    );
    await new Promise<void>((r) => phish.listen(0, '127.0.0.1', r));
    const phishUrl = `http://localhost:${(phish.address() as any).port}/`;
    const page = await (await browser.newContext()).newPage();
    await addVirtualAuthenticator(page);
    const inv = await createInvitation(s.gatehouse.db.kysely, { email: 'victim@example.com', role: 'viewer' });
    await page.goto(`${s.url}/enroll/${inv.token}`);
    await page.getByRole('button', { name: 'Use a passkey instead of a password' }).click();
    await page.getByRole('list', { name: 'Backup codes' }).waitFor();

    const rpInfo = relyingPartyFor(s.url);
    const options = await authenticationOptions(s.gatehouse.db.kysely, rpInfo, 'signin:phish-test', null);
    await page.goto(phishUrl);
    const response = await page.evaluate(async (opts: any) => {
      const b64 = (s: string) =>
        Uint8Array.from(
          atob(
            s
              .replace(/-/g, '+')
              .replace(/_/g, '/')
              .padEnd(Math.ceil(s.length / 4) * 4, '='),
          ),
          (c) => c.charCodeAt(0),
        );
      const enc = (buf: ArrayBuffer) =>
        btoa(String.fromCharCode(...new Uint8Array(buf)))
          .replace(/\+/g, '-')
          .replace(/\//g, '_')
          .replace(/=+$/, '');
      const cred: any = await (globalThis as any).navigator.credentials.get({
        publicKey: { challenge: b64(opts.challenge), rpId: opts.rpId, userVerification: 'required', allowCredentials: [] },
      });
      return {
        id: cred.id,
        rawId: enc(cred.rawId),
        type: cred.type,
        clientExtensionResults: {},
        response: {
          clientDataJSON: enc(cred.response.clientDataJSON),
          authenticatorData: enc(cred.response.authenticatorData),
          signature: enc(cred.response.signature),
          userHandle: cred.response.userHandle ? enc(cred.response.userHandle) : undefined,
        },
      };
    }, options);
    expect(JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString()).origin).toBe(phishUrl.replace(/\/$/, ''));
    await expect(verifyAuthentication(s.gatehouse.db.kysely, rpInfo, 'signin:phish-test', response)).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    phish.close();
  });

  it('answers the password with the second-factor page at its own address: a reload asks that page, not the password again', async () => {
    const { s, rp } = ctx;
    const page = await (await browser.newContext()).newPage();
    const { nextCode } = await enrollWithTotp(page, s, 'reload@example.com');
    const posts: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') posts.push(new URL(r.url()).pathname);
    });
    const flow = await signInWithPassword(page, rp, 'reload@example.com');
    await page.getByLabel('Authentication code').waitFor();
    expect(new URL(page.url()).pathname).toMatch(/^\/interaction\/[^/]+\/second-factor$/);
    await page.reload();
    await page.getByLabel('Authentication code').fill(await nextCode());
    // One password POST only: the reload was a GET of the second-factor page.
    expect(posts.filter((p) => p.endsWith('/login'))).toHaveLength(1);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    expect((await rp.finish(new URL(page.url()), flow)).access_token).toBeTruthy();
  });

  it('signs in with a backup code once; the same code is refused after', async () => {
    const { s, rp } = ctx;
    const page = await (await browser.newContext()).newPage();
    const email = 'backup@example.com';
    const { backupCodes } = await enrollWithTotp(page, s, email);
    const flow = await signInWithPassword(page, rp, email);
    await page.getByRole('link', { name: 'Use a backup code instead' }).click();
    await page.getByLabel('Backup code').fill(backupCodes[0]!);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    const tokens = await rp.finish(new URL(page.url()), flow);
    expect(decodeJwt(tokens.access_token).amr).toEqual(expect.arrayContaining(['pwd', 'otp']));

    await signInWithPassword(page, rp, email, PASSWORD, { prompt: 'login' });
    await page.getByRole('link', { name: 'Use a backup code instead' }).click();
    await page.getByLabel('Backup code').fill(backupCodes[0]!);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/not valid, or was already used/);
  });

  it('rotates refresh tokens; a rotated token used again revokes the whole grant', async () => {
    const { s, rp } = ctx;
    const page = await (await browser.newContext()).newPage();
    const email = 'rotate@example.com';
    const { nextCode } = await enrollWithTotp(page, s, email);
    const first = await signInWithTotp(page, rp, email, nextCode);
    const second = await rp.refresh(first.refresh_token!);
    bearerTokens.push(first.refresh_token!, second.refresh_token!, first.access_token);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(decodeJwt(second.access_token).roles).toEqual(['operator']);
    // The old one comes back (stolen and replayed): refused, and the grant is gone.
    await expect(rp.refresh(first.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(rp.refresh(second.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // The audit event is appended by a background queue: look for it a few times.
    let n = 0;
    for (let i = 0; i < 50 && n === 0; i++) {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from audit_event where action = 'token.refresh_reuse'`.execute(
        s.gatehouse.db.kysely,
      );
      n = rows[0]!.n;
      if (n === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(n).toBe(1);
  });

  it("ends the other session's refresh tokens when the password changes", async () => {
    const { s, rp } = ctx;
    const email = 'change@example.com';
    const laptop = await (await browser.newContext()).newPage();
    const { nextCode } = await enrollWithTotp(laptop, s, email);
    const phone = await (await browser.newContext()).newPage();
    const phoneTokens = await signInWithTotp(phone, rp, email, nextCode);
    await signInWithTotp(laptop, rp, email, nextCode);
    await laptop.goto(`${s.url}/account`);
    await laptop.getByLabel('Current password').fill(PASSWORD);
    await laptop.getByLabel('New password').fill(NEW_PASSWORD);
    await laptop.getByRole('button', { name: 'Change password' }).click();
    await expect(laptop.getByRole('status').textContent()).resolves.toMatch(/Password changed/);
    await expect(rp.refresh(phoneTokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // The old password no longer works; the new one does.
    await signInWithPassword(phone, rp, email, PASSWORD, { prompt: 'login' });
    await expect(phone.getByRole('alert').textContent()).resolves.toBe('Incorrect email or password.');
  });

  it('forces a new sign-in for max_age=1', async () => {
    const { s, rp } = ctx;
    const page = await (await browser.newContext()).newPage();
    const email = 'maxage@example.com';
    const { nextCode } = await enrollWithTotp(page, s, email);
    const first = await signInWithTotp(page, rp, email, nextCode);
    // Without max_age the session is reused: straight back to the application.
    await page.goto((await rp.start()).url);
    await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    await new Promise((r) => setTimeout(r, 2100));
    await page.goto((await rp.start({ max_age: '1' })).url);
    await page.getByLabel('Password').waitFor();
    expect(page.url()).toMatch(/\/interaction\//);
    expect(decodeJwt(first.id_token!).auth_time).toEqual(expect.any(Number));
  });

  it('keeps every secret it saw out of the logs, the audit log and the token store', async () => {
    const db = ctx.s.gatehouse.db.kysely;
    const logs = ctx.s.logs.join('\n');
    const audit = JSON.stringify(
      await db
        .selectFrom('audit_event' as any)
        .selectAll()
        .execute(),
    );
    const store = JSON.stringify(await db.selectFrom('oidc_payload').selectAll().execute());
    expect(secrets.length).toBeGreaterThan(20);
    expect(audit).toMatch(/signin\.success/);
    for (const secret of secrets) {
      expect(logs.includes(secret), 'a secret in the logs').toBe(false);
      expect(audit.includes(secret), 'a secret in the audit log').toBe(false);
      expect(store.includes(secret), 'a secret in the token store').toBe(false);
    }
    for (const token of bearerTokens) {
      expect(logs.includes(token)).toBe(false);
      expect(store.includes(token), 'a refresh token stored in clear').toBe(false);
    }
  });

  it('re-enrolls a second factor from a factor-reset link after the current password, keeping it; the old factor is gone', async () => {
    const { s, rp } = ctx;
    const person = await createPerson(s, 'reset@example.com', 'viewer');
    const { invitation: inv } = await createRecoveryLink(s.gatehouse.db.kysely, {
      accountId: person.id,
      what: 'factors',
      createdBy: 'test',
    });
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${s.url}/enroll/${inv.token}`);
    // Issue 7: the link proves the current password first, and never offers a new one.
    await expect(page.getByLabel('New password').count()).resolves.toBe(0);
    await page.getByLabel('Current password').fill('not the password 123 abc');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/not right/);
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(/\/factor$/);
    const key = (await page.locator('[data-totp-secret]').textContent())!.trim();
    const nextCode = totpClock(base32Decode(key), 0);
    await page.getByLabel('Authentication code').fill(await nextCode());
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('list', { name: 'Backup codes' }).waitFor();
    const tokens = await signInWithTotp(page, rp, person.email, nextCode);
    expect(decodeJwt(tokens.access_token).sub).toBe(person.id);
    // The factor from before the reset no longer signs in.
    await signInWithPassword(page, rp, person.email, PASSWORD, { prompt: 'login' });
    await page.getByLabel('Authentication code').fill(await person.nextCode());
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/not right/);
    expect((await page.goto(`${s.url}/enroll/${inv.token}`))!.status()).toBe(410);
  });

  it('refuses an expired or already used invitation', async () => {
    const { s } = ctx;
    const page = await (await browser.newContext()).newPage();
    const inv = await createInvitation(s.gatehouse.db.kysely, { email: 'late@example.com', role: 'viewer' });
    await s.gatehouse.db.kysely
      .updateTable('invitation')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', inv.id)
      .execute();
    const expired = await page.goto(`${s.url}/enroll/${inv.token}`);
    expect(expired!.status()).toBe(410);
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/expired or was already used/);

    const { token } = await enrollWithTotp(page, s, 'once@example.com');
    const rows = await s.gatehouse.db.kysely
      .selectFrom('invitation')
      .select(['token_hash', 'used_at'])
      .where('email', '=', 'once@example.com')
      .execute();
    expect(rows[0]!.used_at).not.toBeNull();
    expect(rows[0]!.token_hash).not.toContain(token);
    const again = await page.goto(`${s.url}/enroll/${token}`);
    expect(again!.status()).toBe(410);
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/expired or was already used/);
    expect(await s.gatehouse.db.kysely.selectFrom('account').select('id').where('email', '=', 'once@example.com').execute()).toHaveLength(
      1,
    );
  });
});

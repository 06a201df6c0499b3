// People in a real browser: invitation → enrollment → sign-in through the pages, with a real OIDC
// client library as the application (code + PKCE), tokens checked as the agentserver would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { decodeJwt } from 'jose';
import { createInvitation } from '../../src/accounts/invitations.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { totpAt } from '../../src/mfa/totp.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { addVirtualAuthenticator, launchBrowser } from '../helpers/browser.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';
import type { Backend } from '../helpers/db.ts';

const AUDIENCE = 'https://agents.example.com';
const PASSWORD = 'correct horse battery staple 42';

function base32Decode(input: string): Uint8Array {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of input.replace(/=+$/, '')) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const out = new Uint8Array(Math.floor(bits.length / 8));
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  return out;
}

/** A code for the next time step not yet used, as a person waiting for their app's next code. */
async function freshCode(secret: Uint8Array, used: Set<string>): Promise<string> {
  for (;;) {
    const code = await totpAt(secret, Math.floor(Date.now() / 1000));
    if (!used.has(code)) {
      used.add(code);
      return code;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

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

async function enrollWithTotp(page: Page, s: TestServer, email: string, role = 'operator'): Promise<{ secret: Uint8Array; backupCodes: string[]; used: Set<string> }> {
  const inv = await createInvitation(s.gatehouse.db.kysely, { email, role, permissions: ['agent:summarizer:inject'] });
  await page.goto(`${s.url}/enroll/${inv.token}`);
  await page.getByLabel('New password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  const key = (await page.locator('[data-totp-secret]').textContent())!.trim();
  expect(await page.locator('[data-otpauth]').getAttribute('href')).toMatch(/^otpauth:\/\/totp\//);
  const secret = base32Decode(key);
  const used = new Set<string>();
  await page.getByLabel('Authentication code').fill(await freshCode(secret, used));
  await page.getByRole('button', { name: 'Continue' }).click();
  const codes = await page.getByRole('list', { name: 'Backup codes' }).getByRole('listitem').allTextContents();
  expect(codes).toHaveLength(10);
  return { secret, backupCodes: codes.map((c) => c.trim()), used };
}

async function signInWithPassword(page: Page, rp: RelyingParty, email: string, password = PASSWORD, params: Record<string, string> = {}) {
  const flow = await rp.start(params);
  await page.goto(flow.url);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  return flow;
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
    const { secret, used } = await enrollWithTotp(page, s, email);

    const flow = await signInWithPassword(page, rp, email);
    await page.getByLabel('Authentication code').fill(await freshCode(secret, used));
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
    if (backend === 'postgres') await page.screenshot({ path: 'docs/signed-in-callback.tmp.png' }).catch(() => {});
  });
});

// People going through the pages: enrollment from an invitation link and sign-in, in a real
// browser (playwright) or over plain HTTP (HttpAgent), and the admin console's sign-in.
import { expect } from 'vitest';
import type { Page } from 'playwright-core';
import { createInvitation } from '../../src/accounts/invitations.ts';
import { totpClock, type TestPerson } from './accounts.ts';
import { formField, HttpAgent, type Step } from './http-signin.ts';
import type { TestServer } from './server.ts';

export const PASSWORD = 'correct horse battery staple 42';

/** RFC 4648 base32, as authenticator apps read the key shown at enrollment. */
export function base32Decode(input: string): Uint8Array {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of input.replace(/=+$/, '')) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const out = new Uint8Array(Math.floor(bits.length / 8));
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  return out;
}

export interface Enrolled {
  /** The key as the enrollment page shows it (base32). */
  key: string;
  secret: Uint8Array;
  backupCodes: string[];
  /** The next unused TOTP code (waits for the app's next step when needed). */
  nextCode: () => Promise<string>;
}

/** Open an invitation link and enroll with a password and an authenticator app. */
export async function enrollFromLink(page: Page, link: string, password = PASSWORD): Promise<Enrolled> {
  await page.goto(link);
  await page.getByLabel('New password').fill(password);
  await page.getByRole('button', { name: 'Continue' }).click();
  const key = (await page.locator('[data-totp-secret]').textContent())!.trim();
  expect(await page.locator('[data-otpauth]').getAttribute('href')).toMatch(/^otpauth:\/\/totp\//);
  const secret = base32Decode(key);
  const nextCode = totpClock(secret, 0);
  await page.getByLabel('Authentication code').fill(await nextCode());
  await page.getByRole('button', { name: 'Continue' }).click();
  const codes = await page.getByRole('list', { name: 'Backup codes' }).getByRole('listitem').allTextContents();
  expect(codes).toHaveLength(10);
  return { key, secret, backupCodes: codes.map((c) => c.trim()), nextCode };
}

/** An invitation made through the domain, then enrollment through the pages. */
export async function enrollWithTotp(
  page: Page,
  s: TestServer,
  email: string,
  role = 'operator',
  permissions: string[] = [],
): Promise<Enrolled> {
  const inv = await createInvitation(s.gatehouse.db.kysely, { email, role, permissions });
  return enrollFromLink(page, `${s.url}/enroll/${inv.token}`);
}

/** On Gatehouse's sign-in page: email and password, then the authenticator code. */
export async function signInOnPage(page: Page, email: string, nextCode: () => Promise<string>, password = PASSWORD): Promise<void> {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByLabel('Authentication code').fill(await nextCode());
  await page.getByRole('button', { name: 'Continue' }).click();
}

/** Over HTTP: from a Gatehouse sign-in page (the interaction) to wherever the flow ends. */
export async function signInOverHttp(
  agent: HttpAgent,
  page: Step,
  person: Pick<TestPerson, 'email' | 'password' | 'nextCode'>,
): Promise<Step> {
  const uid = /\/interaction\/([^/"?]+)/.exec(page.url)?.[1];
  if (!uid) throw new Error(`not a sign-in page: ${page.url} (${page.status})`);
  const second = await agent.follow(
    await agent.request(`/interaction/${uid}/login`, {
      form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: person.password },
    }),
  );
  // The password step answers with the second-factor page itself.
  if (second.status !== 200 || !second.text.includes(`/interaction/${uid}/second-factor`))
    throw new Error(`password step failed: ${second.status} ${second.url}`);
  return agent.follow(
    await agent.request(`/interaction/${uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code: await person.nextCode() } }),
  );
}

/** A person signed in to the admin console over HTTP; `landed` is the page the sign-in ended on. */
export async function adminOverHttp(
  s: TestServer,
  person: Pick<TestPerson, 'email' | 'password' | 'nextCode'>,
): Promise<{ agent: HttpAgent; landed: Step }> {
  const agent = new HttpAgent(s.url);
  const signIn = await agent.follow(await agent.request('/admin'));
  const landed = await signInOverHttp(agent, signIn, person);
  return { agent, landed };
}

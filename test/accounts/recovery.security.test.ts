// Recovery links do only what they say (issue 7 point 3), attacked over HTTP on both databases:
// a factor-reset link without the current password enrolls nothing and never takes a new
// password; a password-reset link without a second factor changes nothing; each link works once,
// is audited with its own actions, and ends the person's sessions and refresh tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticatePassword, getAccount } from '../../src/accounts/accounts.service.ts';
import { findValidInvitation } from '../../src/accounts/invitations.ts';
import { MAX_PROOF_ATTEMPTS, createRecoveryLink, type RecoveryWhat } from '../../src/accounts/recovery.ts';
import { listAudit } from '../../src/audit/query.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { factorSummary } from '../../src/mfa/factors.ts';
import { timeStep, totpAt } from '../../src/mfa/totp.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { alertText, formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { base32Decode, signInOverHttp } from '../helpers/people.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

const NEW_PASSWORD = 'a brand new passphrase for recovery 9';
const nowCode = (seed: Uint8Array) => totpAt(seed, timeStep(Math.floor(Date.now() / 1000)) * 30);

describe.each(['postgres', 'pglite'] as const)('recovery links on %s', (backend) => {
  let s: TestServer;
  let rp: RelyingParty;
  const db = () => s.gatehouse.db.kysely;

  beforeAll(async () => {
    s = await startServer(backend);
    const port = await freePort();
    const app = await createClient(db(), {
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

  async function tokensFor(person: Pick<TestPerson, 'email' | 'password' | 'nextCode'>) {
    const flow = await rp.start({ scope: 'openid email' });
    const a = new HttpAgent(s.url);
    const end = await signInOverHttp(a, await a.follow(await a.request(flow.url)), person);
    return rp.finish(new URL(end.location!), flow);
  }

  async function link(person: TestPerson, what: RecoveryWhat) {
    const made = await createRecoveryLink(db(), { accountId: person.id, what, createdBy: 'test' });
    const agent = new HttpAgent(s.url);
    const path = `/enroll/${made.invitation.token}`;
    const first = await agent.request(path);
    return { made, agent, path, first, token: made.invitation.token };
  }

  const post = (agent: HttpAgent, path: string, page: Step, form: Record<string, string>) =>
    agent.request(path, { form: { _csrf: formField(page.text, '_csrf')!, ...form } });
  const passwordWorks = async (email: string, password: string) => (await authenticatePassword(db(), email, password)).ok;
  const events = async (action: string, target: string) =>
    (await listAudit(db(), { action, limit: 50 })).events.filter((e) => e.target === target);
  const unused = async (token: string) => (await findValidInvitation(db(), token)) !== null;

  /** Every input on a page has a visible label naming it. */
  function expectLabelled(html: string) {
    for (const m of html.matchAll(/<input\b[^>]*>/g)) {
      if (/type="hidden"/.test(m[0])) continue;
      const id = /\bid="([^"]+)"/.exec(m[0])?.[1];
      expect(id, m[0]).toBeDefined();
      expect(html).toMatch(new RegExp(`<label for="${id}">[^<]+</label>`));
    }
  }

  it('factor reset: without the current password nothing is enrolled, a new password is never taken, and it works once', async () => {
    const person = await createPerson(s, `factors-${backend}@example.com`, 'viewer');
    const { made, agent, path, first, token } = await link(person, 'factors');
    expect(made.revoked).toMatchObject({ totp: 1, backup_codes: 10, sessions: true, password: false });
    expect(first.status).toBe(200);
    expect(first.text).toContain('Current password');
    expect(first.text).not.toContain('data-passkey-register');
    expect(first.text).not.toContain('data-totp-secret');
    expectLabelled(first.text);

    // No seed, no passkey registration, no TOTP confirmation before the password.
    const factorPage = await agent.request(`${path}/factor`);
    expect(factorPage.text).not.toContain('data-totp-secret');
    const options = await agent.request(`${path}/passkey/options`, {
      json: {},
      headers: { 'x-csrf-token': formField(first.text, '_csrf')! },
    });
    expect(options.status).toBe(400);
    expect(options.text).not.toContain('challenge');
    const totp = await post(agent, `${path}/totp`, first, { code: '123456' });
    expect(totp.status).toBe(400);
    // A new password is refused, before the proof…
    const early = await post(agent, `${path}/password`, first, { password: NEW_PASSWORD });
    expect(early.status).toBe(400);
    expect(alertText(early.text)).toMatch(/does not change your password/);
    // … and a wrong current password proves nothing.
    const wrong = await post(agent, `${path}/prove-password`, first, { password: 'not the password at all 1' });
    expect(wrong.status).toBe(400);
    expect(alertText(wrong.text)).toMatch(/not right/);
    expect((await events('factor.reset_complete', person.id)).map((e) => e.outcome)).toEqual(['failure']);
    expect(await factorSummary(db(), person.id)).toEqual({ totp: false, passkeys: 0, backup_codes_left: 0 });
    expect(await unused(token)).toBe(true);

    const proven = await post(agent, `${path}/prove-password`, first, { password: person.password });
    expect(proven.status).toBe(303);
    const factor = await agent.follow(proven);
    expect(factor.url).toMatch(/\/factor$/);
    expectLabelled(factor.text);
    // Even after the proof, the link does not take a new password.
    const late = await post(agent, `${path}/password`, factor, { password: NEW_PASSWORD });
    expect(late.status).toBe(400);
    expect(await passwordWorks(person.email, person.password)).toBe(true);
    expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(false);

    const seed = base32Decode(/data-totp-secret>([A-Z2-7]+)</.exec(factor.text)![1]!);
    const done = await post(agent, `${path}/totp`, factor, { code: await nowCode(seed) });
    expect(done.status).toBe(200);
    expect(done.text).toContain('Save your backup codes');
    expect(await factorSummary(db(), person.id)).toEqual({ totp: true, passkeys: 0, backup_codes_left: 10 });
    expect(await passwordWorks(person.email, person.password)).toBe(true);
    expect((await events('factor.reset_complete', person.id)).map((e) => e.outcome)).toEqual(['success', 'failure']);
    expect((await agent.request(path)).status).toBe(410);
    expect((await post(agent, `${path}/prove-password`, first, { password: person.password })).status).toBe(410);
  });

  it('password reset: without a second factor nothing changes; wrong proofs kill the link', async () => {
    const person = await createPerson(s, `guess-${backend}@example.com`, 'viewer');
    const { agent, path, first, token } = await link(person, 'password');
    expect(first.status).toBe(200);
    expectLabelled(first.text);
    const direct = await post(agent, `${path}/password`, first, { password: NEW_PASSWORD });
    expect(direct.status).toBe(400);
    expect(alertText(direct.text)).toMatch(/Prove who you are first/);
    expect((await post(agent, `${path}/totp`, first, { code: await nowCode(person.seed) })).status).toBe(400);
    expect(await passwordWorks(person.email, person.password)).toBe(true);
    expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(false);
    expect(await factorSummary(db(), person.id)).toEqual({ totp: true, passkeys: 0, backup_codes_left: 10 });

    // Parallel guesses: the attempts are counted before they are checked, so at most MAX are evaluated.
    const guesses = await Promise.all(
      Array.from({ length: 3 * MAX_PROOF_ATTEMPTS }, (_, i) => post(agent, `${path}/prove-code`, first, { code: String(100000 + i) })),
    );
    expect(guesses.every((g) => g.status === 400 || g.status === 410)).toBe(true);
    expect(guesses.some((g) => g.status === 410)).toBe(true);
    const row = await db()
      .selectFrom('invitation')
      .select(['proof_attempts', 'used_at'])
      .where('id', '=', (await link(person, 'password')).made.invitation.id)
      .executeTakeFirst();
    expect(row).toMatchObject({ proof_attempts: 0, used_at: null }); // a new link starts afresh …
    expect(await unused(token)).toBe(false); // … and the guessed one is dead, even with the right code now.
    expect((await post(agent, `${path}/prove-code`, first, { code: await nowCode(person.seed) })).status).toBe(410);
    expect(await passwordWorks(person.email, person.password)).toBe(true);
  });

  it('password reset: a second factor, then a new password; sessions and refresh tokens end; it works once', async () => {
    const person = await createPerson(s, `forgot-${backend}@example.com`, 'viewer');
    const tokens = await tokensFor(person);
    const { made, agent, path, first } = await link(person, 'password');
    expect(made.revoked).toMatchObject({ totp: 0, backup_codes: 0, sessions: false, password: false });
    // Making the link changes nothing: the person's refresh token still works.
    const refreshed = await rp.refresh(tokens.refresh_token!);
    expect(first.text).toContain('Authentication code or backup code');

    const proven = await post(agent, `${path}/prove-code`, first, { code: person.backupCodes[0]! });
    expect(proven.status).toBe(303);
    const page = await agent.follow(proven);
    expect(page.text).toContain('Choose a new password');
    expect(page.text).not.toContain('data-passkey-register');
    expectLabelled(page.text);
    const weak = await post(agent, `${path}/password`, page, { password: 'password' });
    expect(weak.status).toBe(400);
    expect(alertText(weak.text)).toBeTruthy();
    const done = await post(agent, `${path}/password`, page, { password: NEW_PASSWORD });
    expect(done.status).toBe(200);
    expect(done.text).toContain('Password changed');
    expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(true);
    expect(await passwordWorks(person.email, person.password)).toBe(false);
    // The factors are untouched except the backup code spent as the proof.
    expect(await factorSummary(db(), person.id)).toEqual({ totp: true, passkeys: 0, backup_codes_left: 9 });
    await expect(rp.refresh(refreshed.refresh_token!)).rejects.toThrow();
    expect((await getAccount(db(), person.id)).sessions_valid_after).not.toBeNull();
    expect((await events('password.reset_complete', person.id)).map((e) => e.outcome)).toEqual(['success']);
    expect((await agent.request(path)).status).toBe(410);
    expect((await post(agent, `${path}/password`, page, { password: 'yet another passphrase 77 x' })).status).toBe(410);
    expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(true);
  });

  it('re-enrollment: a new invitation for the same account and role; the old credentials are gone; it works once', async () => {
    const person = await createPerson(s, `lost-${backend}@example.com`, 'operator', ['agent:x:inject']);
    const tokens = await tokensFor(person);
    const { made, agent, path, first } = await link(person, 'all');
    expect(made.revoked).toMatchObject({ totp: 1, backup_codes: 10, sessions: true, password: true });
    await expect(rp.refresh(tokens.refresh_token!)).rejects.toThrow();
    expect(await passwordWorks(person.email, person.password)).toBe(false);
    expect(first.text).toContain('Set up your account again');
    expectLabelled(first.text);
    const factor = await agent.follow(await post(agent, `${path}/password`, first, { password: NEW_PASSWORD }));
    const seed = base32Decode(/data-totp-secret>([A-Z2-7]+)</.exec(factor.text)![1]!);
    const done = await post(agent, `${path}/totp`, factor, { code: await nowCode(seed) });
    expect(done.status).toBe(200);
    const after = await getAccount(db(), person.id);
    expect(after).toMatchObject({ role: 'operator', permissions: ['agent:x:inject'], status: 'active' });
    expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(true);
    expect(await factorSummary(db(), person.id)).toEqual({ totp: true, passkeys: 0, backup_codes_left: 10 });
    expect((await events('account.reenroll_complete', person.id)).map((e) => e.outcome)).toEqual(['success']);
    expect((await agent.request(path)).status).toBe(410);
  });

  it('makes only the latest link work, refuses what a link cannot prove, and refuses disabled accounts', async () => {
    const person = await createPerson(s, `latest-${backend}@example.com`, 'viewer');
    const older = await createRecoveryLink(db(), { accountId: person.id, what: 'password', createdBy: 'test' });
    const newer = await createRecoveryLink(db(), { accountId: person.id, what: 'password', createdBy: 'test' });
    expect(await unused(older.invitation.token)).toBe(false);
    expect(await unused(newer.invitation.token)).toBe(true);
    expect(newer.invitation.expires_at.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);
    // 'all' removed the password: a factor reset has nothing to prove, a password reset no factor.
    await createRecoveryLink(db(), { accountId: person.id, what: 'all', createdBy: 'test' });
    await expect(createRecoveryLink(db(), { accountId: person.id, what: 'factors', createdBy: 'test' })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    await expect(createRecoveryLink(db(), { accountId: person.id, what: 'password', createdBy: 'test' })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    await expect(createRecoveryLink(db(), { accountId: person.id, what: 'everything', createdBy: 'test' })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
  });
});

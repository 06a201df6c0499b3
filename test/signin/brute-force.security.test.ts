// Brute force against the sign-in steps under concurrency (issue 7, point 1) and without locking
// out the real person (point 2, OWASP Credential Stuffing / "device cookies"), over HTTP, on both
// databases. Each request names its client address through X-Forwarded-For behind a (pretend)
// proxy (GATEHOUSE_TRUST_PROXY), the way the timing test does.
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createClient } from '../../src/clients/clients.service.ts';
import { timeStep, totpAt } from '../../src/mfa/totp.ts';
import { DEVICE_FAILURES_PER_HOUR, IP_FAILURES_PER_MINUTE } from '../../src/signin/brute-force.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { BACKENDS } from '../helpers/db.ts';
import { formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const PARALLEL = 50;
// The per-address window made short through its documented setting, so "once the window has
// passed" takes seconds instead of a minute; still long enough for a whole burst to fall inside
// one window on a loaded machine (a fixed window that ends mid-burst would rightly allow 5 more).
const IP_WINDOW_SECONDS = 15;

interface Browser {
  agent: HttpAgent;
  from: string;
}

const browser = (s: TestServer, from: string): Browser => ({ agent: new HttpAgent(s.url), from });

function post(b: Browser, path: string, form: Record<string, string>): Promise<Step> {
  return b.agent.request(path, { form, headers: { 'x-forwarded-for': b.from } });
}

/** /auth → the sign-in page of a new interaction. */
async function openSignIn(s: TestServer, b: Browser, clientId: string): Promise<{ uid: string; csrf: string }> {
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: REDIRECT,
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
    prompt: 'login',
  });
  let step = await b.agent.request(`/auth?${params}`, { headers: { 'x-forwarded-for': b.from } });
  for (let i = 0; i < 10 && step.location && new URL(step.location, s.url).origin === new URL(s.url).origin; i++)
    step = await b.agent.request(new URL(step.location, step.url).href, { headers: { 'x-forwarded-for': b.from } });
  const uid = /\/interaction\/([^/"?]+)/.exec(step.url)![1]!;
  return { uid, csrf: formField(step.text, '_csrf')! };
}

/** Password, then the second-factor page; returns its CSRF token. */
async function passPassword(s: TestServer, b: Browser, uid: string, csrf: string, person: TestPerson): Promise<string> {
  // The password step answers with the second-factor page itself.
  const res = await post(b, `/interaction/${uid}/login`, { _csrf: csrf, email: person.email, password: person.password });
  expect(res.status, res.text.slice(0, 300)).toBe(200);
  expect(res.text).toContain(`/interaction/${uid}/totp`);
  return formField(res.text, '_csrf')!;
}

/** Six digits that are no TOTP code of this seed around now. */
async function wrongCodes(seed: Uint8Array, n: number): Promise<string[]> {
  const now = timeStep(Math.floor(Date.now() / 1000));
  const valid = new Set(await Promise.all([-2, -1, 0, 1, 2, 3].map((d) => totpAt(seed, (now + d) * 30))));
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const code = String(100000 + i * 7919).slice(-6);
    if (!valid.has(code)) out.push(code);
  }
  return out;
}

async function failures(s: TestServer, method: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from audit_event
    where action = 'signin.failure' and details->>'method' = ${method}`.execute(s.gatehouse.db.kysely);
  return rows[0]!.n;
}

/** Every answer is either an evaluated failure (401) or a refusal (429 with Retry-After). */
function tally(answers: Step[]): { evaluated: number; refused: number } {
  let evaluated = 0;
  let refused = 0;
  for (const a of answers) {
    if (a.status === 401) evaluated++;
    else {
      expect(a.status, a.text.slice(0, 300)).toBe(429);
      expect(Number(a.headers.get('retry-after'))).toBeGreaterThan(0);
      refused++;
    }
  }
  return { evaluated, refused };
}

/** Retry a step while it is refused, waiting what Retry-After says (bounded). */
async function afterWaiting(attempt: () => Promise<Step>): Promise<Step> {
  let res = await attempt();
  for (let i = 0; i < 6 && res.status === 429; i++) {
    await new Promise((r) => setTimeout(r, Number(res.headers.get('retry-after')) * 1000 + 100));
    res = await attempt();
  }
  return res;
}

/** A complete sign-in (password, then a TOTP code) from this browser; the last answer. */
async function signInFully(s: TestServer, b: Browser, clientId: string, person: TestPerson): Promise<Step> {
  const { uid, csrf } = await openSignIn(s, b, clientId);
  const csrf2 = await passPassword(s, b, uid, csrf, person);
  return post(b, `/interaction/${uid}/totp`, { _csrf: csrf2, code: await person.nextCode() });
}

const finishedSignIn = (s: TestServer, res: Step) => {
  expect(res.status, res.text.slice(0, 300)).toBe(303);
  expect(new URL(res.location!, s.url).pathname).toMatch(/^\/auth\//);
};

describe.each(BACKENDS)('brute force under concurrency on %s', (backend) => {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  async function setup() {
    s = await startServer(backend, { GATEHOUSE_TRUST_PROXY: 'true', GATEHOUSE_SIGNIN_IP_WINDOW: String(IP_WINDOW_SECONDS) });
    const app = await createClient(s.gatehouse.db.kysely, { name: 'app', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    return { s, clientId: app.client_id };
  }

  it('evaluates at most the allowed number of 50 parallel wrong TOTP codes; the right code works once the window has passed', async () => {
    const { s, clientId } = await setup();
    const person = await createPerson(s, 'ada@example.com');
    // The attacker knows the password and races the second factor from one address.
    const attacker = browser(s, '203.0.113.7');
    const { uid, csrf } = await openSignIn(s, attacker, clientId);
    const csrf2 = await passPassword(s, attacker, uid, csrf, person);
    const codes = await wrongCodes(person.seed, PARALLEL);
    const answers = await Promise.all(codes.map((code) => post(attacker, `/interaction/${uid}/totp`, { _csrf: csrf2, code })));
    const { evaluated, refused } = tally(answers);
    expect(evaluated).toBeLessThanOrEqual(IP_FAILURES_PER_MINUTE);
    expect(evaluated + refused).toBe(PARALLEL);
    expect(await failures(s, 'totp')).toBe(evaluated);

    // One code for every try: a code of the previous step is still accepted while unused.
    const code = await person.nextCode();
    const done = await afterWaiting(() => post(attacker, `/interaction/${uid}/totp`, { _csrf: csrf2, code }));
    expect(done.status, done.text.slice(0, 300)).toBe(303);
    expect(await failures(s, 'totp')).toBe(evaluated);
  }, 120_000);

  it('evaluates at most the allowed number of 50 parallel wrong passwords', async () => {
    const { s, clientId } = await setup();
    const person = await createPerson(s, 'alan@example.com');
    const attacker = browser(s, '203.0.113.8');
    const { uid, csrf } = await openSignIn(s, attacker, clientId);
    const answers = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        post(attacker, `/interaction/${uid}/login`, { _csrf: csrf, email: person.email, password: `wrong guess number ${i}` }),
      ),
    );
    const { evaluated, refused } = tally(answers);
    expect(evaluated).toBeLessThanOrEqual(IP_FAILURES_PER_MINUTE);
    expect(evaluated + refused).toBe(PARALLEL);
    expect(await failures(s, 'password')).toBe(evaluated);

    const done = await afterWaiting(() =>
      post(attacker, `/interaction/${uid}/login`, { _csrf: csrf, email: person.email, password: person.password }),
    );
    expect(done.status, done.text.slice(0, 300)).toBe(200);
    expect(done.text).toContain(`/interaction/${uid}/totp`);
  }, 120_000);

  it('lets the owner holding a device cookie sign in without delay while an attacker keeps the account tripped', async () => {
    const { s, clientId } = await setup();
    const person = await createPerson(s, 'grace@example.com');
    // A real sign-in first, from the owner's browser: it receives its device cookie.
    const owner = browser(s, '192.0.2.10');
    const first = await signInFully(s, owner, clientId, person);
    finishedSignIn(s, first);
    const cookie = first.headers.getSetCookie().find((c) => c.startsWith('gh_device='));
    expect(cookie).toMatch(/httponly/i);
    expect(cookie).toMatch(/samesite=lax/i);
    // Long-lived: 180 days.
    const expires = Date.parse(/expires=([^;]+)/i.exec(cookie!)![1]!);
    expect(expires - Date.now()).toBeGreaterThan(179 * 86400_000);

    // Sign-ins opened before the attack: the owner's, and a browser the account never used.
    const ownerFlow = await openSignIn(s, owner, clientId);
    const stranger = browser(s, '198.51.100.20');
    const strangerFlow = await openSignIn(s, stranger, clientId);

    // The attacker guesses the owner's password from many addresses until the account's delay is
    // long (7 failures: 8 s), so the checks below all fall inside it.
    const attacker = browser(s, '203.0.113.1');
    const attackFlow = await openSignIn(s, attacker, clientId);
    for (let i = 0; (await failures(s, 'password')) < 7; i++) {
      attacker.from = `203.0.113.${(i % 250) + 1}`;
      const res = await post(attacker, `/interaction/${attackFlow.uid}/login`, {
        _csrf: attackFlow.csrf,
        email: person.email,
        password: `guess ${i}`,
      });
      if (res.status === 429) await new Promise((r) => setTimeout(r, 100));
    }

    const strangerTry = () =>
      post(stranger, `/interaction/${strangerFlow.uid}/login`, {
        _csrf: strangerFlow.csrf,
        email: person.email,
        password: person.password,
      });
    const before = await strangerTry();
    expect(before.status).toBe(429);
    // The owner's browser: a typo is evaluated (and counted on its cookie only), then it signs in.
    const typo = await post(owner, `/interaction/${ownerFlow.uid}/login`, {
      _csrf: ownerFlow.csrf,
      email: person.email,
      password: 'a typo',
    });
    expect(typo.status).toBe(401);
    const csrf2 = await passPassword(s, owner, ownerFlow.uid, ownerFlow.csrf, person);
    finishedSignIn(s, await post(owner, `/interaction/${ownerFlow.uid}/totp`, { _csrf: csrf2, code: await person.nextCode() }));
    // The account was tripped for unknown devices the whole time, and still is.
    expect((await strangerTry()).status).toBe(429);
  }, 120_000);

  it('locks out a device cookie after too many failures, and only that cookie', async () => {
    const { s, clientId } = await setup();
    const person = await createPerson(s, 'hedy@example.com');
    const owner = browser(s, '192.0.2.30');
    finishedSignIn(s, await signInFully(s, owner, clientId, person));
    const flow = await openSignIn(s, owner, clientId);
    for (let i = 0; i < DEVICE_FAILURES_PER_HOUR; i++) {
      owner.from = `192.0.2.${100 + i}`; // below every address's own limit
      const res = await post(owner, `/interaction/${flow.uid}/login`, { _csrf: flow.csrf, email: person.email, password: `typo ${i}` });
      expect(res.status).toBe(401);
    }
    const locked = await post(owner, `/interaction/${flow.uid}/login`, {
      _csrf: flow.csrf,
      email: person.email,
      password: person.password,
    });
    expect(locked.status).toBe(429);
    // Those failures were the cookie's, not the account's: another browser signs in at once.
    finishedSignIn(s, await signInFully(s, browser(s, '198.51.100.40'), clientId, person));
  }, 120_000);

  it('does not trust a device cookie of another account, or a forged one', async () => {
    const { s, clientId } = await setup();
    const alice = await createPerson(s, 'alice@example.com');
    const bob = await createPerson(s, 'bob@example.com');
    const b = browser(s, '192.0.2.50');
    finishedSignIn(s, await signInFully(s, b, clientId, alice));
    // Bob's account, guessed from a browser that only ever signed in as Alice: the unknown-device path.
    const flow = await openSignIn(s, b, clientId);
    const tries: number[] = [];
    for (let i = 0; i < 5; i++) {
      b.from = `192.0.2.${60 + i}`;
      tries.push((await post(b, `/interaction/${flow.uid}/login`, { _csrf: flow.csrf, email: bob.email, password: `guess ${i}` })).status);
    }
    expect(tries).toEqual([401, 401, 401, 401, 429]);
    // A forged cookie for Bob (right shape, wrong MAC) is no better.
    const forger = browser(s, '192.0.2.70');
    const forged = await openSignIn(s, forger, clientId);
    const res = await forger.agent.request(`/interaction/${forged.uid}/login`, {
      form: { _csrf: forged.csrf, email: bob.email, password: bob.password },
      headers: { 'x-forwarded-for': forger.from, cookie: `${forger.agent.jar.header()}; gh_device=${'A'.repeat(22)}.${'B'.repeat(43)}` },
    });
    expect(res.status).toBe(429);
  }, 120_000);
});

// Brute force against the sign-in steps under concurrency (issue 7, point 1) and without locking
// out the real person (point 2, OWASP Credential Stuffing / "device cookies"), over HTTP, on both
// databases. Each request names its client address through X-Forwarded-For behind a (pretend)
// proxy (GATEHOUSE_TRUST_PROXY), the way the timing test does.
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createClient } from '../../src/clients/clients.service.ts';
import { timeStep, totpAt } from '../../src/mfa/totp.ts';
import { IP_FAILURES_PER_MINUTE } from '../../src/signin/brute-force.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { BACKENDS } from '../helpers/db.ts';
import { formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const PARALLEL = 50;
// The per-address window made short through its documented setting, so "once the window has
// passed" takes seconds instead of a minute.
const IP_WINDOW_SECONDS = 2;

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
  const res = await post(b, `/interaction/${uid}/login`, { _csrf: csrf, email: person.email, password: person.password });
  expect(res.status, res.text.slice(0, 300)).toBe(303);
  const page = await b.agent.request(new URL(res.location!, s.url).href, { headers: { 'x-forwarded-for': b.from } });
  return formField(page.text, '_csrf')!;
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
  }, 60_000);

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
    expect(done.status, done.text.slice(0, 300)).toBe(303);
  }, 60_000);
});

// Attacks on the sign-in steps, straight at the HTTP endpoints: enumeration, brute force per IP
// and per account, CSRF, replayed codes, and what the pages send back.
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { alertText, formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';

async function setup() {
  const s = await startServer('postgres');
  const app = await createClient(s.gatehouse.db.kysely, {
    name: 'app',
    grants: ['authorization_code', 'refresh_token'],
    redirectUris: [REDIRECT],
  });
  return { s, app };
}

/** Open a sign-in as a browser would: /auth → the sign-in page. */
async function openSignIn(
  s: TestServer,
  clientId: string,
  extra: Record<string, string> = {},
): Promise<{ agent: HttpAgent; page: Step; uid: string }> {
  const agent = new HttpAgent(s.url);
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: REDIRECT,
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
    state: 'st',
    ...extra,
  });
  const page = await agent.follow(await agent.request(`/auth?${params}`));
  const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
  return { agent, page, uid };
}

async function password(
  o: { agent: HttpAgent; page: Step; uid: string },
  email: string,
  pw: string,
  csrf = formField(o.page.text, '_csrf')!,
): Promise<Step> {
  return o.agent.request(`/interaction/${o.uid}/login`, { form: { _csrf: csrf, email, password: pw } });
}

async function auditCount(s: TestServer, action: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from audit_event where action = ${action}`.execute(
    s.gatehouse.db.kysely,
  );
  return rows[0]!.n;
}

describe('sign-in under attack (PostgreSQL)', () => {
  let env: Awaited<ReturnType<typeof setup>>;
  afterEach(async () => env?.s.close());

  it('gives an unknown email and a wrong password the same answer', async () => {
    env = await setup();
    const person = await createPerson(env.s, 'grace@example.com');
    const a = await password(await openSignIn(env.s, env.app.client_id), 'nobody@example.com', 'whatever whatever');
    const b = await password(await openSignIn(env.s, env.app.client_id), person.email, 'wrong password entirely');
    expect(a.status).toBe(401);
    expect(b.status).toBe(a.status);
    expect(alertText(a.text)).toBe('Incorrect email or password.');
    expect(alertText(b.text)).toBe(alertText(a.text));
    expect(await auditCount(env.s, 'signin.failure')).toBeGreaterThanOrEqual(2);
  });

  it('names the existing account as the target of its failed sign-ins, and nothing for an unknown email', async () => {
    env = await setup();
    const person = await createPerson(env.s, 'hopper@example.com');
    const unknown = await password(await openSignIn(env.s, env.app.client_id), 'nobody-here@example.com', 'whatever whatever');
    const wrong = await password(await openSignIn(env.s, env.app.client_id), person.email, 'wrong password entirely');
    // The page says the same either way.
    expect(wrong.status).toBe(unknown.status);
    expect(alertText(wrong.text)).toBe(alertText(unknown.text));
    const o = await openSignIn(env.s, env.app.client_id);
    const second = await o.agent.follow(await password(o, person.email, person.password));
    const badCode = await o.agent.request(`/interaction/${o.uid}/backup-code`, {
      form: { _csrf: formField(second.text, '_csrf')!, code: 'zzzz-zzzz' },
    });
    expect(badCode.status).toBe(401);
    const { rows } = await sql<{ actor: string; target: string | null; method: string }>`
      select actor, target, details->>'method' as method from audit_event where action = 'signin.failure' order by seq`.execute(
      env.s.gatehouse.db.kysely,
    );
    expect(rows).toEqual([
      { actor: 'anonymous', target: null, method: 'password' },
      { actor: 'anonymous', target: person.id, method: 'password' },
      { actor: person.id, target: person.id, method: 'backup_code' },
    ]);
  });

  it('refuses the sixth failed attempt in a minute from one IP, with Retry-After; successes do not use the budget', async () => {
    env = await setup();
    const person = await createPerson(env.s, 'linus@example.com');
    for (let i = 0; i < 4; i++) {
      expect((await password(await openSignIn(env.s, env.app.client_id), `stranger${i}@example.com`, 'guess guess guess')).status).toBe(
        401,
      );
    }
    // People signing in successfully from the same address take nothing from the budget.
    for (let i = 0; i < 3; i++) {
      const ok = await password(await openSignIn(env.s, env.app.client_id), person.email, person.password);
      expect(ok.status).toBe(200);
      expect(ok.text).toContain('Authentication code');
    }
    expect((await password(await openSignIn(env.s, env.app.client_id), 'stranger5@example.com', 'guess guess guess')).status).toBe(401);
    const sixth = await password(await openSignIn(env.s, env.app.client_id), 'stranger6@example.com', 'guess guess guess');
    expect(sixth.status).toBe(429);
    expect(Number(sixth.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(alertText(sixth.text)).toMatch(/Too many failed attempts/);
    // The limit holds even for the right password from that address until the minute is over.
    expect((await password(await openSignIn(env.s, env.app.client_id), person.email, person.password)).status).toBe(429);
    expect(await auditCount(env.s, 'ratelimit.trip')).toBeGreaterThanOrEqual(1);
  });

  it('slows down guessing on one account with a growing delay, not a lockout', async () => {
    env = await setup();
    const person = await createPerson(env.s, 'barbara@example.com');
    // Spread over two addresses' worth of budget is not possible here, so stay under 5 per IP:
    // 4 consecutive failures on the account trigger the first delay.
    for (let i = 0; i < 4; i++)
      expect((await password(await openSignIn(env.s, env.app.client_id), person.email, `wrong ${i} password`)).status).toBe(401);
    const delayed = await password(await openSignIn(env.s, env.app.client_id), person.email, person.password);
    expect(delayed.status).toBe(429);
    const wait = Number(delayed.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    await new Promise((r) => setTimeout(r, wait * 1000 + 200));
    // After the delay the right password works again.
    expect((await password(await openSignIn(env.s, env.app.client_id), person.email, person.password)).status).toBe(200);
  });

  it('refuses a form without its CSRF token, or from another origin', async () => {
    env = await setup();
    const person = await createPerson(env.s, 'margaret@example.com');
    const o = await openSignIn(env.s, env.app.client_id);
    const none = await o.agent.request(`/interaction/${o.uid}/login`, { form: { email: person.email, password: person.password } });
    expect(none.status).toBe(403);
    const forged = await password(o, person.email, person.password, 'A'.repeat(43));
    expect(forged.status).toBe(403);
    const crossSite = await o.agent.request(`/interaction/${o.uid}/login`, {
      form: { _csrf: formField(o.page.text, '_csrf')!, email: person.email, password: person.password },
      headers: { origin: 'https://evil.example.com' },
    });
    expect(crossSite.status).toBe(403);
    expect(none.text).not.toMatch(/\n\s+at /);
  });

  it('refuses a TOTP code used once already, and logs it', async () => {
    env = await setup();
    const person: TestPerson = await createPerson(env.s, 'katherine@example.com');
    const first = await openSignIn(env.s, env.app.client_id);
    const second = await first.agent.follow(await password(first, person.email, person.password));
    const code = await person.nextCode();
    const done = await first.agent.request(`/interaction/${first.uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code } });
    expect(done.status).toBe(303);
    expect(new URL(done.location!, env.s.url).pathname).toMatch(/^\/auth\//);

    const again = await openSignIn(env.s, env.app.client_id, { prompt: 'login' });
    const step2 = await again.agent.follow(await password(again, person.email, person.password));
    const replay = await again.agent.request(`/interaction/${again.uid}/totp`, { form: { _csrf: formField(step2.text, '_csrf')!, code } });
    expect(replay.status).toBe(401);
    expect(alertText(replay.text)).toMatch(/already used/);
    const { rows } = await sql<{
      details: any;
    }>`select details from audit_event where action = 'signin.failure' order by seq desc limit 1`.execute(env.s.gatehouse.db.kysely);
    expect(rows[0]!.details).toMatchObject({ method: 'totp', reason: 'replayed' });
  });

  it('sends strict headers on every sign-in page', async () => {
    env = await setup();
    const o = await openSignIn(env.s, env.app.client_id);
    const csp = o.page.headers.get('content-security-policy')!;
    expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]+' 'strict-dynamic'/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(csp).toMatch(/form-action 'self' http:\/\/127\.0\.0\.1:9/);
    expect(csp).not.toMatch(/unsafe-inline/);
    expect(o.page.headers.get('cache-control')).toMatch(/no-store/);
    expect(o.page.headers.get('x-frame-options')).toBe('DENY');
    expect(o.page.text).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script
    expect(o.page.text).not.toMatch(/style=/);
    expect(o.page.text).toMatch(/<label for="email">Email<\/label>/);
    for (const cookie of (await fetch(o.page.url, { headers: { cookie: o.agent.jar.header() } })).headers.getSetCookie()) {
      expect(cookie).toMatch(/httponly/i);
      expect(cookie).toMatch(/samesite=lax/i);
    }
    // An unknown or finished interaction gets a clear page, not a stack.
    const gone = await o.agent.request('/interaction/does-not-exist');
    expect(gone.status).toBe(400);
    expect(gone.text).toMatch(/expired or was already completed/);
  });
});

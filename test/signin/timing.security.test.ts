// Account enumeration by timing (OWASP Authentication Cheat Sheet, "Authentication Responses";
// ASVS V2.2): an unknown email and a wrong password for a real account must both pay for one
// argon2id verification, so the password step answers both in the same time within noise.
//
// No absolute thresholds: the machine may be loaded. Every round times, in a shuffled order, an
// unknown email, a wrong password, a request refused before the password step (CSRF failure: the
// same route without argon2) and one argon2id verification in this process with Gatehouse's
// parameters. Medians of the rounds are compared with each other only:
//  - both password answers cost at least half an argon2id run more than the refused request
//    (without the dummy hash an unknown email would cost about as little as the refused one);
//  - the two password answers are within a ratio of 1.5 of each other.
import crypto from 'node:crypto';
import argon2 from 'argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount } from '../../src/accounts/accounts.service.ts';
import { ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST, hashPassword } from '../../src/accounts/password.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { BACKENDS } from '../helpers/db.ts';
import { formField, HttpAgent } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'https://app.example.com/callback';
const WARMUP = 3;
const ROUNDS = 30;
// Each account takes at most the failures that come free of the per-account delay.
const FAILURES_PER_ACCOUNT = 3;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function shuffle<T>(xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = crypto.randomInt(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe.each(BACKENDS)('sign-in timing on %s', (backend) => {
  let s: TestServer;
  let app: { client_id: string };
  const accounts: string[] = [];

  beforeAll(async () => {
    // Behind a (pretend) proxy, so each request can come from its own address and the per-IP
    // budget of failures does not turn the samples into 429s.
    s = await startServer(backend, { GATEHOUSE_TRUST_PROXY: 'true' });
    app = await createClient(s.gatehouse.db.kysely, { name: 'app', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    const passwordHash = await hashPassword('the real password of these people');
    for (let i = 0; i < Math.ceil((WARMUP + ROUNDS) / FAILURES_PER_ACCOUNT); i++) {
      accounts.push((await createAccount(s.gatehouse.db.kysely, { email: `timed${i}@example.com`, role: 'viewer', passwordHash })).email);
    }
  });
  afterAll(() => s?.close());

  it('answers an unknown email and a wrong password in the same time, both after an argon2id run', async () => {
    const agent = new HttpAgent(s.url);
    const q = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: REDIRECT,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    });
    const page = await agent.follow(await agent.request(`/auth?${q}`));
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    const csrf = formField(page.text, '_csrf')!;
    const referenceHash = await argon2.hash('reference', {
      type: argon2.argon2id,
      memoryCost: ARGON2_MEMORY_KIB,
      timeCost: ARGON2_TIME_COST,
      parallelism: ARGON2_PARALLELISM,
    });

    let n = 0;
    const timedPost = async (form: Record<string, string>, expected: number) => {
      n++;
      const from = `198.51.${n >> 8}.${n & 255}`;
      const started = performance.now();
      const res = await agent.request(`/interaction/${uid}/login`, { form, headers: { 'x-forwarded-for': from } });
      const ms = performance.now() - started;
      expect(res.status, res.text.slice(0, 200)).toBe(expected);
      return ms;
    };
    const kinds = {
      unknown: (i: number) =>
        timedPost({ _csrf: csrf, email: `nobody-${i}-${crypto.randomUUID()}@example.com`, password: 'a wrong password 123' }, 401),
      wrong: (i: number) =>
        timedPost({ _csrf: csrf, email: accounts[Math.floor(i / FAILURES_PER_ACCOUNT)]!, password: 'a wrong password 123' }, 401),
      refused: () => timedPost({ _csrf: 'not-the-token', email: accounts[0]!, password: 'a wrong password 123' }, 403),
      argon2: async () => {
        const started = performance.now();
        await argon2.verify(referenceHash, 'a wrong password 123');
        return performance.now() - started;
      },
    };
    const samples: Record<keyof typeof kinds, number[]> = { unknown: [], wrong: [], refused: [], argon2: [] };
    for (let i = 0; i < WARMUP + ROUNDS; i++) {
      for (const kind of shuffle(Object.keys(kinds) as Array<keyof typeof kinds>)) {
        const ms = await kinds[kind](i);
        if (i >= WARMUP) samples[kind].push(ms);
      }
    }

    const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<keyof typeof kinds, number>;
    const report = JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Math.round(v * 10) / 10])));
    // Both answers paid for an argon2id verification that the refused request did not.
    expect(m.unknown - m.refused, report).toBeGreaterThan(m.argon2 / 2);
    expect(m.wrong - m.refused, report).toBeGreaterThan(m.argon2 / 2);
    // And they are indistinguishable within noise.
    expect(m.unknown / m.wrong, report).toBeGreaterThan(1 / 1.5);
    expect(m.unknown / m.wrong, report).toBeLessThan(1.5);
  }, 180_000);
});

// Full sign-ins per second without a browser: the authorization request, the password step, the
// TOTP step, the resumption and the code exchange with PKCE, against Gatehouse pinned to
// one core. In the same run, the cost of argon2id alone with the same parameters on that core:
// the floor a sign-in cannot go below, since each one verifies one password.
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hashPassword, verifyPassword } from '../src/accounts/password.ts';
import { totpAt, timeStep } from '../src/mfa/totp.ts';
import { formField, HttpAgent, type Step } from '../test/helpers/http-signin.ts';
import { startChild } from './tokens.ts';

export const PASSWORD = 'correct horse battery staple 42';
const REDIRECT = 'http://127.0.0.1:9/cb';

/** An authorization request with PKCE (S256) for `clientId`: its query and the verifier to exchange the code with. */
function authorizationRequest(clientId: string): { query: URLSearchParams; verifier: string } {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: REDIRECT,
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: 's',
  });
  return { query, verifier };
}

type TokenResponse = { access_token: string; id_token?: string; refresh_token?: string };

/** The code at the end of a sign-in (`back`, the redirect to the application) exchanged at /token. */
async function exchangeCode(agent: HttpAgent, clientId: string, back: Step, verifier: string): Promise<TokenResponse> {
  const code = new URL(back.location ?? '', agent.base).searchParams.get('code');
  if (!code)
    throw new Error(`sign-in did not end at the application: ${back.status} ${back.url} ${back.text.replace(/\s+/g, ' ').slice(0, 2000)}`);
  const token = await agent.request('/token', {
    form: { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: clientId, code_verifier: verifier },
  });
  if (token.status !== 200) throw new Error(`code exchange failed: ${token.status} ${token.text}`);
  return JSON.parse(token.text) as TokenResponse;
}

/**
 * One full sign-in (password + TOTP) and code exchange with PKCE: the token response. `agent`:
 * the browser-like client to send it with (bench/signin-trace.ts watches each request).
 */
export async function signIn(
  base: string,
  clientId: string,
  person: { email: string; seed: Buffer },
  agent: HttpAgent = new HttpAgent(base),
): Promise<TokenResponse> {
  const { query, verifier } = authorizationRequest(clientId);
  const page = await agent.follow(await agent.request(`/auth?${query}`));
  const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
  const second = await agent.follow(
    await agent.request(`/interaction/${uid}/login`, {
      form: { _csrf: formField(page.text, '_csrf')!, email: person.email, password: PASSWORD },
    }),
  );
  const code = await totpAt(person.seed, Math.floor(Date.now() / 1000));
  const back = await agent.follow(
    await agent.request(`/interaction/${uid}/totp`, { form: { _csrf: formField(second.text, '_csrf')!, code } }),
  );
  return exchangeCode(agent, clientId, back, verifier);
}

/** The floor's sign-in (bench/token-server.ts, signin-floor): the same requests without a form or a second factor. */
async function floorSignIn(base: string, clientId: string): Promise<void> {
  const agent = new HttpAgent(base);
  const { query, verifier } = authorizationRequest(clientId);
  const back = await agent.follow(await agent.request(`/auth?${query}`));
  const body = await exchangeCode(agent, clientId, back, verifier);
  if (!body.access_token || !body.id_token || !body.refresh_token) throw new Error('floor code exchange lacks a token');
}

export interface SignInBench {
  signInsPerSec: number;
  p50ms: number;
  p99ms: number;
  argon2PerSec: number;
  errors: number;
  /** argon2id verifications per second over sign-ins per second: near 1 means argon2id dominates. */
  share: number;
  /**
   * The server's CPU time per sign-in (every thread, argon2id included): unlike the rates, hardly
   * moved by other load on a shared machine.
   */
  serverCpuMsPerSignIn: number;
  /** CPU time of one argon2id verification, measured the same way. */
  argon2CpuMs: number;
  /** A bare oidc-provider's sign-in with one argon2id verification, same load (see floorSignIn). */
  floor: { signInsPerSec: number; serverCpuMsPerSignIn: number };
}

/** `concurrency` loops of `one` for `ms` on `server`: sign-ins done, latencies, errors, the server's CPU time. */
async function drive(
  server: Awaited<ReturnType<typeof startChild>>,
  one: () => Promise<unknown>,
  concurrency: number,
  ms: number,
  profile: boolean,
) {
  const latencies: number[] = [];
  let errors = 0;
  const loop = async (until: number, record: boolean) =>
    Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < until) {
          const t0 = process.hrtime.bigint();
          try {
            await one();
            if (record) latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          } catch (err) {
            errors++;
            if (errors === 1) console.error(String(err));
          }
        }
      }),
    );
  await loop(Date.now() + 1500, false);
  const started = Date.now();
  const cpuBefore = await server.cpuMs();
  const measured = () => loop(Date.now() + ms, true);
  await (profile ? server.profile(measured) : measured());
  const cpuMs = (await server.cpuMs()) - cpuBefore;
  const elapsed = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { latencies, errors, perSec: latencies.length / elapsed, cpuMsPerSignIn: cpuMs / Math.max(1, latencies.length) };
}

type Argon2Figures = { perSec: number; cpuMsPerVerify: number };

async function argon2Rate(durationMs: number): Promise<Argon2Figures> {
  // Measured in a child pinned to the same single core, so both figures are per core.
  const script = fileURLToPath(import.meta.url);
  try {
    return JSON.parse(execFileSync('taskset', ['-c', '0', process.execPath, script, '--argon2', String(durationMs)]).toString());
  } catch {
    return measureArgon2(durationMs);
  }
}

async function measureArgon2(durationMs: number): Promise<Argon2Figures> {
  const hash = await hashPassword(PASSWORD);
  const deadline = Date.now() + durationMs;
  let n = 0;
  const started = Date.now();
  const cpu = process.cpuUsage();
  // Two at a time, as two concurrent sign-ins would on this core.
  await Promise.all(
    [0, 1].map(async () => {
      while (Date.now() < deadline) {
        await verifyPassword(hash, PASSWORD);
        n++;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { perSec: n / ((Date.now() - started) / 1000), cpuMsPerVerify: (used.user + used.system) / 1000 / Math.max(1, n) };
}

export async function runSignInBench(opts: { durationMs?: number; concurrency?: number } = {}): Promise<SignInBench> {
  const durationMs = opts.durationMs ?? 8000;
  // Four at once: every sign-in comes from one address, and the brute-force limit takes a password
  // attempt's points before verifying it (given back on success), so more than five passwords in
  // flight from one address are refused by design (src/signin/brute-force.ts). Eight at once made
  // the bench measure that refusal.
  const concurrency = opts.concurrency ?? 4;
  // Each person signs in once per TOTP step at most (a used step is refused): enough people.
  const server = await startChild('postgres', 400);
  const people = server.people.map((p) => ({ email: p.email, seed: Buffer.from(p.seed, 'base64url') }));
  let next = 0;
  const usedAt = new Map<number, number>();
  const pick = () => {
    // A person whose code of this step has not been used yet.
    const step = timeStep(Math.floor(Date.now() / 1000));
    for (let i = 0; i < people.length; i++) {
      const k = (next + i) % people.length;
      if (usedAt.get(k) !== step) {
        usedAt.set(k, step);
        next = k + 1;
        return people[k]!;
      }
    }
    throw new Error('not enough bench people for this rate');
  };
  try {
    const g = await drive(server, () => signIn(server.url, server.app_client_id!, pick()), concurrency, durationMs, true);
    const argon2 = await argon2Rate(3000);
    const floorServer = await startChild('signin-floor');
    let floor: SignInBench['floor'];
    try {
      const f = await drive(floorServer, () => floorSignIn(floorServer.url, floorServer.app_client_id!), concurrency, durationMs, false);
      if (f.errors) console.error(`floor sign-ins: ${f.errors} errors`);
      floor = { signInsPerSec: f.perSec, serverCpuMsPerSignIn: f.cpuMsPerSignIn };
    } finally {
      await floorServer.stop();
    }
    return {
      signInsPerSec: g.perSec,
      p50ms: g.latencies[Math.floor(g.latencies.length * 0.5)] ?? NaN,
      p99ms: g.latencies[Math.floor(g.latencies.length * 0.99)] ?? NaN,
      argon2PerSec: argon2.perSec,
      errors: g.errors,
      share: g.perSec / argon2.perSec,
      serverCpuMsPerSignIn: g.cpuMsPerSignIn,
      argon2CpuMs: argon2.cpuMsPerVerify,
      floor,
    };
  } finally {
    await server.stop();
  }
}

export function formatSignIn(r: SignInBench): string {
  return [
    `full sign-ins (password + TOTP + code exchange), Gatehouse on PostgreSQL, one core: ${r.signInsPerSec.toFixed(1)}/s  p50 ${r.p50ms.toFixed(0)} ms  p99 ${r.p99ms.toFixed(0)} ms  errors ${r.errors}`,
    `argon2id verifications alone (m=19456 KiB, t=2, p=1), same core:                 ${r.argon2PerSec.toFixed(1)}/s`,
    `sign-ins / argon2id ceiling: ${r.share.toFixed(2)} (1.00 would mean argon2id is the whole cost)`,
    `server CPU per sign-in (every thread, argon2id included): ${r.serverCpuMsPerSignIn.toFixed(1)} ms; argon2id alone ${r.argon2CpuMs.toFixed(1)} ms: ${(r.argon2CpuMs / r.serverCpuMsPerSignIn).toFixed(2)} (less moved by other load than the rates)`,
    `bare oidc-provider sign-in with one argon2id verification (in memory, no second factor, no audit), same core: ${r.floor.signInsPerSec.toFixed(1)}/s = ${(r.floor.signInsPerSec / r.argon2PerSec).toFixed(2)} of argon2id alone; CPU per sign-in ${r.floor.serverCpuMsPerSignIn.toFixed(1)} ms = ${(r.argon2CpuMs / r.floor.serverCpuMsPerSignIn).toFixed(2)}`,
  ].join('\n');
}

if (process.argv[2] === '--argon2') {
  process.stdout.write(JSON.stringify(await measureArgon2(Number(process.argv[3]))));
} else if (import.meta.main) {
  console.log(formatSignIn(await runSignInBench()));
}

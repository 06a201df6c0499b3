// `npm run bench:load`: a mixed workload for a fixed time against Gatehouse on PostgreSQL, the way
// production sees it: services taking client-credentials tokens, people signing in with password
// + TOTP (no browser), applications refreshing (each refresh rotates) and resource servers
// introspecting. Prints, per operation, throughput, p50/p99 and errors (which must be zero), the
// server's resident memory at start, every few seconds and at the end (it must not keep growing),
// and the database rows written per sign-in and per refresh (pg_stat_user_tables).
//
//   npm run bench:load                         one instance, 30 s
//   npm run bench:load -- --seconds 60         longer
//   npm run bench:load -- --instances 2        two instances on one database; the load generator
//                                              spreads requests across them (refresh tokens issued
//                                              by one are refreshed at the other)
import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { timeStep } from '../src/mfa/totp.ts';
import { signIn } from './signin.ts';
import { startChild } from './tokens.ts';
import { formatMappings, formatMemory, type MemoryReport } from './memory.ts';

const { values: args } = parseArgs({
  options: { seconds: { type: 'string', default: '30' }, instances: { type: 'string', default: '1' } },
  allowPositionals: true,
});
const SECONDS = Number(args.seconds);
const INSTANCES = Math.max(1, Math.min(4, Number(args.instances)));
// Each person signs in at most once per 30-second TOTP step: enough for ~30 sign-ins/s (300 ran
// out at 17/s, and the bench then counted refusals of its own making).
const PEOPLE = 1000;

type Op = 'client_credentials' | 'signin' | 'refresh' | 'introspection';
// Concurrent loops per operation: a token-heavy mix, as the agentserver's services make it.
const MIX: Record<Op, number> = { client_credentials: 4, signin: 2, refresh: 2, introspection: 1 };

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function post(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;

async function rowsWritten(databaseUrl: string): Promise<number> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const r = await c.query('select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint as n from pg_stat_user_tables');
    return Number(r.rows[0].n);
  } finally {
    await c.end();
  }
}

/**
 * Rows the database wrote for `n` runs of `fn`, alone (statistics are flushed about once a
 * second), less what the background jobs (cleanup of what earlier operations left, checkpoints)
 * wrote meanwhile: their rate is measured over an idle window just before.
 */
async function rowsPer(databaseUrl: string, n: number, fn: () => Promise<unknown>): Promise<number> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await sleep(1500);
  const idleStart = await rowsWritten(databaseUrl);
  const idleT0 = Date.now();
  await sleep(4000);
  const idle = await rowsWritten(databaseUrl);
  const backgroundPerMs = (idle - idleStart) / (Date.now() - idleT0);
  const t0 = Date.now();
  for (let i = 0; i < n; i++) await fn();
  await sleep(2500);
  const written = (await rowsWritten(databaseUrl)) - idle;
  return Math.max(0, written - backgroundPerMs * (Date.now() - t0));
}

async function main() {
  const masterKey = crypto.randomBytes(32).toString('base64');
  const first = await startChild('postgres', PEOPLE, { BENCH_MASTER_KEY: masterKey });
  const others = [];
  for (let i = 1; i < INSTANCES; i++) {
    others.push(
      await startChild('postgres', 0, {
        BENCH_MASTER_KEY: masterKey,
        BENCH_DATABASE_URL: first.database_url!,
        BENCH_ISSUER: new URL(first.url).origin.replace('127.0.0.1', 'localhost'),
        BENCH_SERVE_ONLY: '1',
        BENCH_CPU: String(i % 2),
      }),
    );
  }
  const servers = [first, ...others];
  const urls = servers.map((s) => s.url);
  let rr = 0;
  const base = () => urls[rr++ % urls.length]!;
  const basic = `Basic ${Buffer.from(`${first.client_id}:${first.client_secret}`).toString('base64')}`;
  const people = first.people.map((p) => ({ email: p.email, seed: Buffer.from(p.seed, 'base64url') }));
  const usedAt = new Map<number, number>();
  let nextPerson = 0;
  const person = () => {
    const step = timeStep(Math.floor(Date.now() / 1000));
    for (let i = 0; i < people.length; i++) {
      const k = (nextPerson + i) % people.length;
      if (usedAt.get(k) !== step) {
        usedAt.set(k, step);
        nextPerson = k + 1;
        return people[k]!;
      }
    }
    throw new Error('not enough bench people for this sign-in rate');
  };

  let lastServiceToken: string | null = null;
  const refreshTokens: string[] = [];
  const ops: Record<Op, () => Promise<void>> = {
    async client_credentials() {
      const r = await post(`${base()}/token`, 'grant_type=client_credentials', { authorization: basic });
      if (r.status !== 200) throw new Error(`client_credentials ${r.status} ${JSON.stringify(r.json)}`);
      lastServiceToken = r.json.access_token;
    },
    async signin() {
      const t = await signIn(base(), first.app_client_id!, person());
      if (t.refresh_token) refreshTokens.push(t.refresh_token);
    },
    async refresh() {
      const rt = refreshTokens.shift();
      if (!rt) {
        await ops.signin();
        return;
      }
      const r = await post(
        `${base()}/token`,
        new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, client_id: first.app_client_id! }).toString(),
      );
      if (r.status !== 200) throw new Error(`refresh ${r.status} ${JSON.stringify(r.json)}`);
      refreshTokens.push(r.json.refresh_token);
    },
    async introspection() {
      if (!lastServiceToken) await ops.client_credentials();
      const r = await post(`${base()}/token/introspection`, new URLSearchParams({ token: lastServiceToken! }).toString(), {
        authorization: basic,
      });
      if (r.status !== 200 || r.json.active !== true) throw new Error(`introspection ${r.status} ${JSON.stringify(r.json)}`);
    },
  };
  // Rows written per operation, each alone, before the mixed run.
  const rowsPerSignIn = (await rowsPer(first.database_url!, 20, () => ops.signin())) / 20;
  const rowsPerRefresh = (await rowsPer(first.database_url!, 50, () => ops.refresh())) / 50;
  const rowsPerClientCredentials = (await rowsPer(first.database_url!, 200, () => ops.client_credentials())) / 200;

  const rssStart = await Promise.all(servers.map((s) => s.rss()));
  const samples: number[][] = [];
  const stats = Object.fromEntries(
    (Object.keys(MIX) as Op[]).map((op) => [op, { lat: [] as number[], errors: 0, firstError: '' }]),
  ) as Record<Op, { lat: number[]; errors: number; firstError: string }>;
  const deadline = Date.now() + SECONDS * 1000;
  const sampler = setInterval(async () => samples.push(await Promise.all(servers.map((s) => s.rss()))), 5000);
  const started = Date.now();
  await Promise.all(
    (Object.entries(MIX) as [Op, number][]).flatMap(([op, n]) =>
      Array.from({ length: n }, async () => {
        while (Date.now() < deadline) {
          const t0 = process.hrtime.bigint();
          try {
            await ops[op]();
            stats[op].lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
          } catch (err) {
            stats[op].errors++;
            stats[op].firstError ||= String(err).slice(0, 300);
          }
        }
      }),
    ),
  );
  const elapsed = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const rssEnd = await Promise.all(servers.map((s) => s.rss()));
  const memoryEnd: MemoryReport[] = [];
  for (const s of servers) memoryEnd.push(await s.memory());
  // What of it is live: the same after a full garbage collection.
  const memoryLive: MemoryReport[] = [];
  for (const s of servers) memoryLive.push(await s.memory(true));
  for (const s of others) await s.stop();
  await first.stop();
  agent.destroy();

  const mib = (b: number) => (b / 1024 / 1024).toFixed(0);
  console.log(`\n== Mixed load: ${INSTANCES} instance(s) on PostgreSQL, ${SECONDS} s, concurrency ${JSON.stringify(MIX)}`);
  console.log('operation            per s     p50 ms   p99 ms   errors');
  let totalErrors = 0;
  for (const op of Object.keys(MIX) as Op[]) {
    const { lat, errors, firstError } = stats[op];
    lat.sort((a, b) => a - b);
    totalErrors += errors;
    console.log(
      `${op.padEnd(20)} ${(lat.length / elapsed).toFixed(1).padStart(7)}   ${pct(lat, 0.5).toFixed(1).padStart(6)}   ${pct(lat, 0.99).toFixed(1).padStart(6)}   ${errors}${firstError ? `  (first: ${firstError})` : ''}`,
    );
  }
  console.log(
    `resident memory MiB per instance: start ${rssStart.map(mib).join('/')}, every 5 s ${samples.map((s) => s.map(mib).join('/')).join(' → ')}, end ${rssEnd.map(mib).join('/')}`,
  );
  for (const [i, m] of memoryEnd.entries()) console.log(`instance ${i + 1} at the end: ${formatMemory(m)}`);
  for (const [i, m] of memoryLive.entries()) console.log(`instance ${i + 1} after a full GC: ${formatMemory(m)}`);
  if (process.env.BENCH_MEMORY_MAPPINGS) for (const m of memoryEnd) console.log(formatMappings(m));
  console.log(
    `database rows written (inserted + updated + deleted): per sign-in ${rowsPerSignIn.toFixed(1)}, per refresh ${rowsPerRefresh.toFixed(1)}, per client-credentials token ${rowsPerClientCredentials.toFixed(2)}`,
  );
  if (totalErrors > 0) {
    console.error(`bench:load: ${totalErrors} failed requests (must be zero)`);
    process.exitCode = 1;
  }
}

await main();

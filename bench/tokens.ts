// Client-credentials tokens per second and p99 latency: Gatehouse on PostgreSQL and on PGlite,
// and in the same run a bare oidc-provider (in-memory adapter, same key type) as the floor.
// Each server runs in its own process with one core's worth of event loop; the load comes
// from this process over keep-alive HTTP.
import { execFileSync, fork, spawn } from 'node:child_process';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/helpers/server.ts';
import { missingMemorySettings } from '../src/memory-settings.ts';
import { formatMappings, formatMemory, type MemoryReport } from './memory.ts';

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
}

export interface TokenBenchRow {
  server: string;
  tokensPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  rssIdleMiB: number;
  rssMiB: number;
  /** Open-loop load at 70 % of this server's own maximum: the rate offered and the latencies seen. */
  at70: { rate: number; p50ms: number; p99ms: number; errors: number };
  /**
   * Against the floor round by round (each round runs the servers back to back, so a slower or
   * faster spell of this shared virtual machine weighs on both): the median of the rounds' ratios
   * of throughput, and of p99 at 70 %, with their range.
   */
  vsFloor: { throughput: number[]; p99At70: number[]; cpu: number[] };
  /** The same against the bare oidc-provider run with Node's default settings (no memory settings). */
  vsDefaultsFloor: { throughput: number[]; cpu: number[] };
  /** The server's CPU time per token (every thread), median round. */
  cpuUsPerToken: number;
  memoryIdle: MemoryReport;
  memoryLoaded: MemoryReport;
}

/** A server in its own process, pinned to one core (taskset) where the machine allows it. */
export async function startChild(kind: string, people = 0, env: Record<string, string> = {}, opts: { nodeDefaults?: boolean } = {}) {
  const port = await freePort();
  const script = fileURLToPath(new URL('./token-server.ts', import.meta.url));
  // BENCH_CPU_PROF=dir: V8 CPU profiles of the servers' measured windows (profile(); for tuning, not for figures).
  // The servers run with the memory settings `npm start` applies (src/memory-settings.ts), unless
  // opts.nodeDefaults or BENCH_NO_MEMORY_SETTINGS=1 (to measure without them).
  const settings = opts.nodeDefaults || process.env.BENCH_NO_MEMORY_SETTINGS ? null : missingMemorySettings();
  // BENCH_NODE_FLAGS: more flags for the servers (to measure a V8 setting before adopting it).
  const flags: string[] = [...(settings?.flags ?? []), ...(process.env.BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [])];
  env = { ...settings?.env, ...env };
  const args = [...flags, script, kind, String(port), String(people)];
  const child = hasTaskset()
    ? spawn('taskset', ['-c', env.BENCH_CPU ?? '0', process.execPath, ...args], {
        stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
        env: { ...process.env, ...env },
      })
    : fork(script, args.slice(flags.length + 1), {
        execArgv: flags,
        stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
        env: { ...process.env, ...env },
      });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  const info = JSON.parse(line) as {
    url: string;
    client_id: string;
    client_secret: string;
    app_client_id?: string;
    people: Array<{ email: string; seed: string }>;
    database_url?: string;
  };
  return {
    ...info,
    rss: () =>
      new Promise<number>((resolve) => {
        child.once('message', (m: any) => resolve(m.rss));
        child.send('rss');
      }),
    /** The server process's CPU time so far (user + system, every thread), in ms. */
    cpuMs: () =>
      new Promise<number>((resolve) => {
        const on = (m: any) => {
          if (m && 'cpu' in m) {
            child.off('message', on);
            resolve((m.cpu.user + m.cpu.system) / 1000);
          }
        };
        child.on('message', on);
        child.send('cpu');
      }),
    /** Where the server's memory is (bench/memory.ts). */
    memory: (afterGc = false) =>
      new Promise<MemoryReport>((resolve) => {
        child.once('message', (m: any) => resolve(m.memory));
        child.send(afterGc ? 'memory-after-gc' : 'memory');
      }),
    /** Profile what `during` makes the server do, into BENCH_CPU_PROF (a no-op without it). */
    profile: async <T>(during: () => Promise<T>): Promise<T> => {
      if (!process.env.BENCH_CPU_PROF) return during();
      const reply = (want: string) =>
        new Promise<any>((resolve) => {
          const on = (m: any) => {
            if (m && want in m) {
              child.off('message', on);
              resolve(m);
            }
          };
          child.on('message', on);
        });
      const started = reply('profiling');
      child.send('prof-start');
      await started;
      try {
        return await during();
      } finally {
        const done = reply('profile');
        child.send('prof-stop');
        console.error(`CPU profile: ${(await done).profile}`);
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send('stop');
      }),
  };
}

/**
 * A client-credentials request sender over keep-alive HTTP: `send()` resolves once the answer is
 * in, counting a 200 as a latency since `since` (ms, performance.now()) and anything else as an error.
 */
function tokenSender(url: string, id: string, secret: string, maxSockets: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const target = new URL('/token', url);
  const auth = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  const body = 'grant_type=client_credentials';
  const headers = { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length };
  const latencies: number[] = [];
  let errors = 0;
  const send = (since: number = performance.now()) =>
    new Promise<void>((resolve) => {
      const req = http.request(target, { method: 'POST', agent, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) latencies.push(performance.now() - since);
          else errors++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  return {
    send,
    /** Close the sockets; latencies sorted, p50, p99 and the error count. */
    finish() {
      agent.destroy();
      latencies.sort((a, b) => a - b);
      const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
      return { answered: latencies.length, p50ms: pct(0.5), p99ms: pct(0.99), errors };
    },
  };
}

async function load(url: string, id: string, secret: string, durationMs: number, concurrency: number) {
  const sender = tokenSender(url, id, secret, concurrency);
  const deadline = Date.now() + durationMs;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) await sender.send();
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  const { answered, ...figures } = sender.finish();
  return { tokensPerSec: answered / elapsed, ...figures };
}

/** The load generator (this process, all its threads) on core 1, away from the servers on core 0. */
export function pinLoadGenerator(): void {
  if (hasTaskset()) execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
}

/**
 * An open-loop load: requests are sent on a fixed schedule (`rate` a second) whatever the server
 * answers, and each latency runs from the request's scheduled time, so a stall shows in the
 * figures instead of slowing the load down (no coordinated omission).
 */
async function openLoop(url: string, id: string, secret: string, rate: number, durationMs: number) {
  const sender = tokenSender(url, id, secret, 256);
  const started = performance.now();
  const total = Math.floor((rate * durationMs) / 1000);
  let sent = 0;
  const inFlight: Array<Promise<void>> = [];
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && started + (sent * 1000) / rate <= now) {
        inFlight.push(sender.send(started + (sent * 1000) / rate));
        sent++;
      }
      if (sent >= total) resolve();
      else setImmediate(tick);
    };
    tick();
  });
  await Promise.all(inFlight);
  const { answered: _answered, ...figures } = sender.finish();
  return { rate, ...figures };
}

export async function runTokenBench(opts: { durationMs?: number; concurrency?: number; rounds?: number } = {}): Promise<TokenBenchRow[]> {
  pinLoadGenerator();
  const durationMs = opts.durationMs ?? 3000;
  const concurrency = opts.concurrency ?? 16;
  const rounds = opts.rounds ?? 5;
  // The floor twice: with the memory settings Gatehouse starts with (src/memory-settings.ts), so
  // that the ratio is the code's, and with Node's defaults, as the library runs out of the box,
  // so that what those settings cost is in the figures too.
  const kinds = [
    { kind: 'floor', server: 'bare oidc-provider (floor)' },
    { kind: 'floor', server: 'bare oidc-provider, Node defaults', nodeDefaults: true },
    { kind: 'postgres', server: 'Gatehouse on PostgreSQL' },
    { kind: 'pglite', server: 'Gatehouse on PGlite' },
  ] as const;
  const DEFAULTS_FLOOR = 1;
  // All run at once and take turns under load, round after round, so that a noisy neighbour on
  // a shared machine weighs on each of them alike; the median round is reported.
  const servers = await Promise.all(kinds.map((k) => startChild(k.kind, 0, {}, { nodeDefaults: 'nodeDefaults' in k })));
  try {
    // Idle memory once starting has settled, as README's `npm start` figures are read: right
    // after start, compiling PGlite's WebAssembly on a busy core holds several hundred MiB for
    // a few seconds.
    await new Promise((r) => setTimeout(r, 10_000));
    const idle: MemoryReport[] = [];
    for (const s of servers) idle.push(await s.memory());
    for (const s of servers) await load(s.url, s.client_id, s.client_secret, 1000, concurrency); // warm-up: JIT, caches
    const results: Array<Array<Awaited<ReturnType<typeof load>> & { cpuUsPerToken: number }>> = kinds.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < servers.length; i++) {
        const s = servers[i]!;
        const cpu0 = await s.cpuMs();
        const res = await s.profile(() => load(s.url, s.client_id, s.client_secret, durationMs, concurrency));
        const cpuMs = (await s.cpuMs()) - cpu0;
        results[i]!.push({ ...res, cpuUsPerToken: (cpuMs * 1000) / Math.max(1, res.tokensPerSec * (durationMs / 1000)) });
      }
    }
    const loaded: MemoryReport[] = [];
    for (const s of servers) loaded.push(await s.memory());
    const medians = kinds.map((_, i) => [...results[i]!].sort((a, b) => a.tokensPerSec - b.tokensPerSec)[Math.floor(rounds / 2)]!);
    // Then each at 70 % of its own maximum, in the same order, round after round; the median p99 is reported.
    const at70: Array<Array<Awaited<ReturnType<typeof openLoop>>>> = kinds.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < servers.length; i++) {
        const s = servers[i]!;
        at70[i]!.push(await openLoop(s.url, s.client_id, s.client_secret, Math.round(medians[i]!.tokensPerSec * 0.7), durationMs));
      }
    }
    const ratios = (i: number, f: (k: number, r: number) => number, to = 0) => Array.from({ length: rounds }, (_, r) => f(i, r) / f(to, r));
    const throughput = (k: number, r: number) => results[k]![r]!.tokensPerSec;
    // Floor's CPU per token over this one's: like throughput, higher is better.
    const cpu = (k: number, r: number) => 1 / results[k]![r]!.cpuUsPerToken;
    return kinds.map(({ server }, i) => {
      const median = medians[i]!;
      const open = [...at70[i]!].sort((a, b) => a.p99ms - b.p99ms);
      return {
        server,
        ...median,
        errors: results[i]!.reduce((n, x) => n + x.errors, 0),
        rssIdleMiB: idle[i]!.rss / 2 ** 20,
        rssMiB: loaded[i]!.rss / 2 ** 20,
        memoryIdle: idle[i]!,
        memoryLoaded: loaded[i]!,
        at70: { ...open[Math.floor(rounds / 2)]!, errors: at70[i]!.reduce((n, x) => n + x.errors, 0) },
        vsFloor: { throughput: ratios(i, throughput), p99At70: ratios(i, (k, r) => at70[k]![r]!.p99ms), cpu: ratios(i, cpu) },
        vsDefaultsFloor: { throughput: ratios(i, throughput, DEFAULTS_FLOOR), cpu: ratios(i, cpu, DEFAULTS_FLOOR) },
        cpuUsPerToken: [...results[i]!].map((x) => x.cpuUsPerToken).sort((a, b) => a - b)[Math.floor(rounds / 2)]!,
      };
    });
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => `median ${medianOf(xs).toFixed(2)} (rounds ${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})`;

export function formatTokenRows(rows: TokenBenchRow[]): string {
  const floor = rows[0]!;
  const defaultsFloor = rows.find((r) => r.server.includes('Node defaults'))!;
  const lines = ['server                             tokens/s   p50 ms   p99 ms  errors  RSS idle/loaded MiB  vs floor'];
  for (const r of rows) {
    lines.push(
      `${r.server.padEnd(33)} ${r.tokensPerSec.toFixed(0).padStart(9)} ${r.p50ms.toFixed(2).padStart(8)} ${r.p99ms.toFixed(2).padStart(8)} ${String(r.errors).padStart(7)} ${`${r.rssIdleMiB.toFixed(0)} / ${r.rssMiB.toFixed(0)}`.padStart(20)} ${(r.tokensPerSec / floor.tokensPerSec).toFixed(2).padStart(9)}`,
    );
  }
  lines.push('', 'at 70 % of its own maximum (open loop, latency from the scheduled send time, median of the rounds):');
  lines.push('server                             rate/s   p50 ms   p99 ms  errors  p99 vs floor');
  for (const r of rows) {
    lines.push(
      `${r.server.padEnd(33)} ${String(r.at70.rate).padStart(7)} ${r.at70.p50ms.toFixed(2).padStart(8)} ${r.at70.p99ms.toFixed(2).padStart(8)} ${String(r.at70.errors).padStart(7)} ${(r.at70.p99ms / floor.at70.p99ms).toFixed(2).padStart(13)}`,
    );
  }
  lines.push('', 'against the floor, round by round (each round runs the servers back to back):');
  for (const r of rows.filter((x) => x !== floor)) {
    lines.push(`${r.server.padEnd(33)} throughput ${spread(r.vsFloor.throughput)}   p99 at 70 % ${spread(r.vsFloor.p99At70)}`);
    lines.push(
      `${''.padEnd(33)} server CPU per token ${r.cpuUsPerToken.toFixed(0)} µs against the floor's ${floor.cpuUsPerToken.toFixed(0)} µs: floor/this ${spread(r.vsFloor.cpu)}`,
    );
    if (r !== defaultsFloor)
      lines.push(
        `${''.padEnd(33)} against the floor on Node's defaults: throughput ${spread(r.vsDefaultsFloor.throughput)}, CPU ${spread(r.vsDefaultsFloor.cpu)}`,
      );
  }
  lines.push('', 'where the memory is (V8 heap spaces committed, /proc/self/smaps resident by kind of mapping):');
  for (const r of rows) {
    lines.push(`  ${r.server}, idle:   ${formatMemory(r.memoryIdle)}`);
    lines.push(`  ${r.server}, loaded: ${formatMemory(r.memoryLoaded)}`);
    if (process.env.BENCH_MEMORY_MAPPINGS) lines.push(formatMappings(r.memoryLoaded));
  }
  return lines.join('\n');
}

if (import.meta.main) {
  console.log(formatTokenRows(await runTokenBench()));
}

// Memory settings the server needs before Node.js starts (README, "Sizing"; issue 8 point 7).
// glibc reads its malloc settings from the environment when the process starts, and V8 sizes
// its young generation when the isolate is created, so neither can be changed from JavaScript
// once running: src/main.ts calls applyMemorySettings() first, and if a setting is missing the process
// replaces itself (execve: same process id, same open files, no parent left behind) with one
// that has them. Signals, exit codes and stdio are therefore the server's own, unchanged.
// A value the operator set (the environment variable, or the flag in the command line or in
// NODE_OPTIONS) is kept as it is.
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Environment the server starts with, measured under `npm run bench:load` on PostgreSQL (README,
 * "Sizing"; 321 MiB at the end of the run without them, 243 with them and the young-generation
 * flag below, 233-237 with both V8 flags):
 *  - UV_THREADPOOL_SIZE: the libuv pool runs argon2id and WebCrypto signing; more threads than
 *    cores finish no sooner and each thread that ever hashed held a 19 MiB block: the cores, at
 *    least 2, at most libuv's default of 4.
 * Not set: MALLOC_ARENA_MAX=2 (glibc's arenas, one per allocating thread, keep what was freed in
 * them): 215 instead of 243 MiB at the end of the mixed load on PostgreSQL, but the threads then
 * contend for two arenas and a client-credentials token cost ~15 % more CPU (0.70 against 0.89 of
 * the bare oidc-provider, `npm run bench tokens`); on PGlite it was worse for memory too (median
 * ~310 against ~260 MiB idle). A fixed MALLOC_MMAP_THRESHOLD_ (=1048576) would give argon2id's blocks back as well,
 * but every run then faults its 19 MiB in afresh: 85-103 ms per verification instead of 25 on
 * the development machine. An operator who prefers the memory sets it (README, "Sizing").
 * A value the operator set is kept (and should a MALLOC_* default be added here, an operator who
 * sets any MALLOC_* variable owns malloc's settings: none would be added).
 */
export function startEnv(parallelism: number = os.availableParallelism()): Record<string, string> {
  return { UV_THREADPOOL_SIZE: String(Math.min(4, Math.max(2, parallelism))) };
}

/**
 * V8 flags, each with the flags by which an operator takes that part of the heap's sizing over.
 *  - Young generation: under load V8 grew new space to ~100 MiB committed; with 8 MiB
 *    semi-spaces it stays at ~15 MiB (16 MiB semi-spaces: ~30 MiB).
 *  - Old generation: on a machine with much memory and no container limit V8 lets old space grow
 *    to up to 4× what was live after the last full collection before it collects again. Under a
 *    client-credentials load each young collection promotes the requests then in flight
 *    (~0.7 MB, 40-60 times a second), so the old generation filled up to its ~190 MiB limit
 *    with garbage and the resident size of a PostgreSQL-mode server moved between 185 and 305
 *    MiB depending on when it was read (`npm run bench tokens`). Growing by half instead: 190-198
 *    MiB, steadily. The bare oidc-provider behaves the same (194 MiB with these flags, 270-300
 *    without), so this is V8's sizing, not Gatehouse's garbage.
 * The trade is CPU for memory, and this machine's noise is as large as its effect: against Node's
 * defaults, the bare oidc-provider with both flags issued 0.77-0.88× the tokens in three runs of
 * `npm run bench tokens`, yet cost the same CPU per token (0.98, A/A 0.98) in a paired run of
 * twelve rounds (README, "Sizing"). An operator who would rather spend memory sizes the heap
 * with flags of their own, which are kept.
 */
const V8_SETTINGS: ReadonlyArray<{ flag: string; ownedBy: readonly string[] }> = [
  { flag: '--max-semi-space-size=8', ownedBy: ['--max-semi-space-size', '--max-heap-size'] },
  { flag: '--heap-growing-percent=50', ownedBy: ['--heap-growing-percent', '--max-old-space-size', '--max-heap-size'] },
];

export const V8_FLAGS: readonly string[] = V8_SETTINGS.map((s) => s.flag);

function flagName(flag: string): string {
  return flag.split('=')[0]!.replace(/_/g, '-');
}

/** The command line and environment the server should run with; null when it already does. */
export function missingMemorySettings(
  proc: Pick<NodeJS.Process, 'env' | 'execArgv' | 'platform'> = process,
): { flags: string[]; env: Record<string, string> } | null {
  // MALLOC_* are glibc's (Linux); elsewhere there is nothing to set before start but the V8 flag,
  // and not worth a re-exec.
  if (proc.platform !== 'linux') return null;
  const given = [...proc.execArgv, ...(proc.env.NODE_OPTIONS ?? '').split(/\s+/)].map(flagName);
  const flags = V8_SETTINGS.filter((s) => !s.ownedBy.some((name) => given.includes(name))).map((s) => s.flag);
  const ownMalloc = Object.keys(proc.env).some((k) => k.startsWith('MALLOC_'));
  const env = Object.fromEntries(
    Object.entries(startEnv()).filter(([k]) => proc.env[k] === undefined && !(ownMalloc && k.startsWith('MALLOC_'))),
  );
  if (flags.length === 0 && Object.keys(env).length === 0) return null;
  return { flags, env };
}

/** Replaces the process with one that has the settings, if it lacks them (see above). */
export function applyMemorySettings(): void {
  const missing = missingMemorySettings();
  if (!missing || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...missing.flags, ...process.argv.slice(1)], {
    ...process.env,
    ...missing.env,
  });
}

/**
 * One full garbage collection, once the server listens. Starting leaves garbage that V8 has no
 * reason to collect soon on an idle server: on the embedded database, some starts left up to
 * 300 MiB of dead external memory (PGlite's buffers) that an idle heap may keep for minutes.
 * Without --expose-gc, V8's gc() is taken from a throwaway context (the flag is turned back off
 * at once: nothing global is added).
 */
export function collectStartupGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  v8.setFlagsFromString('--no-expose-gc');
  gc();
}

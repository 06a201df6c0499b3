// Memory settings the server needs before Node.js starts (README, "Sizing"; issue 8 point 7).
// glibc reads its malloc settings from the environment when the process starts, and V8 sizes
// its young generation when the isolate is created, so neither can be changed from JavaScript
// once running: src/main.ts calls applyMemorySettings() first, and if a setting is missing the process
// replaces itself (execve: same process id, same open files, no parent left behind) with one
// that has them. Signals, exit codes and stdio are therefore the server's own, unchanged.
// A value the operator set (the environment variable, or the flag in the command line or in
// NODE_OPTIONS) is kept as it is.
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * glibc malloc. Its default mmap threshold is dynamic: after the first 19 MiB argon2id block is
 * freed the threshold rises above it, and every later block is taken from (and kept in) a malloc
 * arena: one 19 MiB block per libuv thread that ever hashed, resident for good. PGlite's start
 * (WebAssembly compilation on V8's background threads, initdb) leaves 150-300 MiB behind the
 * same way. A fixed threshold turns the dynamic one off: blocks of 1 MiB and more are mapped
 * and unmapped on their own, and freed memory at the top of an arena is given back.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(1024 * 1024),
};

/**
 * V8's young generation: under load V8 grows each semi-space to 32 MiB (new space ~100 MiB
 * committed, three semi-spaces' worth). 16 MiB keeps scavenges short and cuts ~50 MiB.
 */
export const V8_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

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
  const flags = V8_FLAGS.filter((f) => !given.includes(flagName(f)));
  const env = Object.fromEntries(Object.entries(MALLOC_ENV).filter(([k]) => proc.env[k] === undefined));
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
 * reason to collect soon on an idle server: on the embedded database, PGlite's start (its data
 * file, initdb's WebAssembly instance on a fresh data directory) leaves 300-500 MiB of dead
 * buffers that an idle heap may keep for minutes. Without --expose-gc, V8's gc() is taken from a
 * throwaway context (the flag is turned back off at once: nothing global is added).
 */
export function collectStartupGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  v8.setFlagsFromString('--no-expose-gc');
  gc();
}

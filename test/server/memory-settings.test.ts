// The server runs with the memory settings that must be in place at process start
// (src/memory-settings.ts, README "Sizing"): `node src/main.ts` replaces itself with a process
// that has them, keeping its process id, so signals and exit codes are still the server's.
// No memory figures are asserted here: only that the settings are applied.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { V8_FLAGS, missingMemorySettings, startEnv } from '../../src/memory-settings.ts';
import { freePort } from '../helpers/server.ts';
import { startInstance } from '../helpers/topology.ts';

describe('missingMemorySettings', () => {
  const linux = (env: NodeJS.ProcessEnv, execArgv: string[] = []) => ({ env, execArgv, platform: 'linux' as const });

  it('asks for every setting on a bare start', () => {
    expect(missingMemorySettings(linux({}))).toEqual({ flags: [...V8_FLAGS], env: startEnv() });
    expect(startEnv(1)).toEqual({ UV_THREADPOOL_SIZE: '2' });
    expect(startEnv(64).UV_THREADPOOL_SIZE).toBe('4');
  });

  it('is satisfied once they are there: no second re-exec', () => {
    expect(missingMemorySettings(linux({ ...startEnv() }, [...V8_FLAGS]))).toBeNull();
  });

  it("keeps the operator's own values, from the command line, NODE_OPTIONS or the environment", () => {
    // Each part of the heap's sizing is the operator's once they size it: the young generation …
    expect(missingMemorySettings(linux({ ...startEnv() }, ['--max_semi_space_size=64']))).toEqual({
      flags: V8_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')),
      env: {},
    });
    // … the old generation, by its growth or by its maximum …
    expect(missingMemorySettings(linux({ ...startEnv() }, ['--max-old-space-size=2048']))).toEqual({
      flags: V8_FLAGS.filter((f) => !f.startsWith('--heap-growing-percent')),
      env: {},
    });
    // … or both at once.
    expect(missingMemorySettings(linux({ ...startEnv() }, ['--max-heap-size=1024']))).toBeNull();
    expect(missingMemorySettings(linux({ ...startEnv() }, ['--max-semi-space-size=64', '--heap_growing_percent=20']))).toBeNull();
    expect(missingMemorySettings(linux({ ...startEnv(), NODE_OPTIONS: '--max-old-space-size=512 --max-semi-space-size=4' }))).toBeNull();
    expect(missingMemorySettings(linux({ MALLOC_MMAP_THRESHOLD_: '65536', UV_THREADPOOL_SIZE: '8' }, [...V8_FLAGS]))).toBeNull();
    // An operator's own malloc setting is theirs; the pool size is still added.
    expect(missingMemorySettings(linux({ MALLOC_MMAP_THRESHOLD_: '65536' }, [...V8_FLAGS]))).toEqual({
      flags: [],
      env: { UV_THREADPOOL_SIZE: startEnv().UV_THREADPOOL_SIZE },
    });
  });

  it('does nothing outside Linux (the malloc settings are glibc’s)', () => {
    expect(missingMemorySettings({ env: {}, execArgv: [], platform: 'darwin' })).toBeNull();
  });
});

describe.runIf(process.platform === 'linux')('node src/main.ts', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-memory-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('serves from the same process id with the flag and the environment it was given, and exits 0 on SIGTERM', async () => {
    // An operator's own malloc setting (README, "Sizing") reaches the re-executed server. A fresh
    // embedded database is created first (startInstance waits up to two minutes: a bound, not a timing).
    const server = await startInstance(await freePort(), {
      GATEHOUSE_DATA_DIR: dir,
      GATEHOUSE_DRAIN_SECONDS: '0',
      MALLOC_MMAP_THRESHOLD_: '1048576',
    });
    const child = server.proc;

    const cmdline = fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
    for (const flag of V8_FLAGS) expect(cmdline).toContain(flag);
    expect(cmdline).toContain(path.resolve('src/main.ts'));
    const environ = fs.readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0');
    // The operator's malloc setting is kept; the pool size is added.
    expect(environ).toContain('MALLOC_MMAP_THRESHOLD_=1048576');
    expect(environ.some((e) => e.startsWith('UV_THREADPOOL_SIZE='))).toBe(true);

    child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 240_000);

  it("passes the server's exit code through (a configuration error exits 2)", async () => {
    const child = spawn(process.execPath, ['src/main.ts'], {
      env: { PATH: process.env.PATH ?? '', PORT: 'not-a-port', GATEHOUSE_DATA_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(err).toContain('configuration error');
    expect(code).toBe(2);
  }, 120_000);
});

// What a newcomer does: start the server on an empty embedded database, follow the first-owner
// link, and stop it with SIGTERM.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/server.ts';

describe('npm start on the embedded database', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-start-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('migrates, prints a one-time first-owner link, answers discovery, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['src/main.ts'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), GATEHOUSE_DATA_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // A fresh embedded database is created and migrated first: seconds on a quiet machine, much
    // longer on a loaded one, so wait up to two minutes (a bound, not a timing assertion).
    for (let i = 0; i < 1200 && !/\/enroll\/[A-Za-z0-9_-]+/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    const link = /(http:\/\/localhost:\d+\/enroll\/[A-Za-z0-9_-]+)/.exec(out)?.[1];
    expect(link, out + err).toBeTruthy();

    const discovery = await fetch(`http://localhost:${port}/.well-known/openid-configuration`);
    expect(discovery.status).toBe(200);
    expect(((await discovery.json()) as any).issuer).toBe(`http://localhost:${port}`);
    const enroll = await fetch(link!);
    expect(enroll.status).toBe(200);
    expect(await enroll.text()).toMatch(/<label for="email">Email<\/label>/); // the first owner types their email

    // Nothing on the console a newcomer could not act on; the link is not in the JSON log lines.
    expect(err).not.toMatch(/warn|deprecat|unsupported/i);
    const logLines = out.split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(link!.split('/enroll/')[1]);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.existsSync(path.join(dir, 'gatehouse.lock'))).toBe(false);
    expect(fs.statSync(path.join(dir, 'master.key')).mode & 0o777).toBe(0o600);
  }, 240_000);
});

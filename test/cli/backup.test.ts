// `gatehouse backup` and `gatehouse restore` as an operator runs them: a round trip into a fresh
// database on PostgreSQL and on the embedded PGlite, then the restored Gatehouse is used as
// before: the same person signs in with the same password and TOTP, a token issued before the
// backup verifies against the restored JWKS, the client authenticates, the audit chain verifies.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { gatehouse as run } from '../helpers/cli.ts';
import { BACKENDS, createPgDatabase, type Backend, type TestDb } from '../helpers/db.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';
import { createPerson } from '../helpers/accounts.ts';
import { adminOverHttp } from '../helpers/people.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { migrations } from '../../migrations/index.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { writeCheckpoint } from '../../src/audit/checkpoint.ts';

const AUDIENCE = 'https://agents.example.com';
/** Opening an embedded database is slow on a loaded machine: give each command time. */
const gatehouse = (args: string[], env: Record<string, string>) => run(args, env, { timeoutMs: 240_000 });
const tmpDirs: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-backup-'));
  tmpDirs.push(d);
  return d;
}

afterAll(async () => {
  for (const c of cleanups) await c().catch(() => {});
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

async function clientToken(url: string, id: string, secret: string): Promise<Response> {
  return fetch(`${url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
}

/** A database the way an operator has one: a PostgreSQL database, or a data directory. */
async function operatorDb(backend: Backend): Promise<{ env: Record<string, string>; open: () => Promise<TestDb> }> {
  if (backend === 'postgres') {
    const { url, drop } = await createPgDatabase();
    cleanups.push(drop);
    return {
      env: { DATABASE_URL: url },
      open: async () => {
        const db = await openDatabase({ databaseUrl: url, dataDir: '' });
        return { db, url, drop: () => db.close() };
      },
    };
  }
  const dir = tmpDir();
  return {
    env: { GATEHOUSE_DATA_DIR: dir },
    open: async () => {
      const db = await openDatabase({ databaseUrl: null, dataDir: dir });
      return { db, url: null, drop: () => db.close() };
    },
  };
}

/** The backup's lines, changed by `edit`, written back gzip'd (a tampered copy). */
function tamper(file: string, out: string, edit: (lines: string[]) => string[]): void {
  const lines = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8').split('\n');
  fs.writeFileSync(out, zlib.gzipSync(edit(lines).join('\n')));
}

describe.each(BACKENDS)('backup and restore on %s', (backend) => {
  it('round trip into a fresh database: same sign-in, tokens, clients and audit chain; wrong key and tampered files refused', async () => {
    const key = crypto.randomBytes(32).toString('base64');
    const source = await operatorDb(backend);
    let s: TestServer = await startServer(backend, { GATEHOUSE_MASTER_KEY: key, ...source.env }, { testDb: await source.open() });
    const port = s.env.PORT!;
    const person = await createPerson(s, 'ada@example.com', 'owner');
    const client = await createClient(s.gatehouse.db.kysely, { name: 'svc', grants: ['client_credentials'], roles: ['viewer'] });
    const issued = await clientToken(s.url, client.client_id, client.client_secret!);
    expect(issued.status).toBe(200);
    const accessToken = ((await issued.json()) as any).access_token as string;
    const before = await adminOverHttp(s, person);
    expect(before.landed.status).toBe(200);
    expect(new URL(before.landed.url).pathname).toMatch(/^\/admin/);
    await writeCheckpoint(s.gatehouse.db.kysely, s.gatehouse.sealer);

    const dir = tmpDir();
    const file = path.join(dir, 'gatehouse.backup.gz');
    const cliEnv = { ...s.env, ...source.env };
    if (backend === 'postgres') {
      // On PostgreSQL, while the server runs.
      const b = await gatehouse(['backup', '--out', file, '--json'], cliEnv);
      expect(b.code, b.stderr).toBe(0);
      expect(JSON.parse(b.stdout)).toMatchObject({ ok: true, rows: { account: 1, totp_credential: 1 } });
      await s.close();
    } else {
      await s.close(); // the embedded database is free; a running server is covered below
      const b = await gatehouse(['backup', '--out', file, '--json'], cliEnv);
      expect(b.code, b.stderr).toBe(0);
      expect(JSON.parse(b.stdout)).toMatchObject({ ok: true, rows: { account: 1, totp_credential: 1 } });
    }
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const content = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8');
    expect(content).not.toContain(key);
    expect(content).not.toContain(Buffer.from(person.seed).toString('base64'));
    expect(content).not.toContain(client.client_secret!);
    const header = JSON.parse(content.split('\n')[0]!);
    expect(header).toMatchObject({ format: 'gatehouse-backup', version: 1 });
    // Every applied migration, the newest last.
    expect(header.migrations).toEqual(Object.keys(migrations));
    // Refusing the same name twice: a backup is never overwritten.
    expect((await gatehouse(['backup', '--out', file], cliEnv)).code).toBe(2);

    const target = await operatorDb(backend);
    const targetEnv = { ...s.env, ...target.env };
    if (backend === 'pglite') fs.writeFileSync(path.join(target.env.GATEHOUSE_DATA_DIR!, 'master.key'), key + '\n', { mode: 0o600 });

    const wrongKey = await gatehouse(['restore', '--in', file], {
      ...targetEnv,
      GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
    });
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain('was made under another master key');

    const altered = path.join(dir, 'altered.gz');
    tamper(file, altered, (lines) => lines.map((l) => (l.startsWith('account\t') ? l.replace('ada@example.com', 'eve@example.com') : l)));
    const alteredRun = await gatehouse(['restore', '--in', altered], targetEnv);
    expect(alteredRun.code).toBe(2);
    expect(alteredRun.stderr).toContain('its SHA-256 does not match');

    // Altered and re-hashed: the HMAC under the master key still tells.
    const rehashed = path.join(dir, 'rehashed.gz');
    tamper(file, rehashed, (lines) => {
      const body = lines.slice(0, -2).map((l) => (l.startsWith('account\t') ? l.replace('"owner"', '"viewer"') : l));
      const trailer = JSON.parse(lines.at(-2)!);
      trailer.sha256 = crypto
        .createHash('sha256')
        .update(body.map((l) => l + '\n').join(''))
        .digest('hex');
      return [...body, JSON.stringify(trailer), ''];
    });
    const rehashedRun = await gatehouse(['restore', '--in', rehashed], targetEnv);
    expect(rehashedRun.code).toBe(2);
    expect(rehashedRun.stderr).toContain('its HMAC does not match');

    const truncated = path.join(dir, 'truncated.gz');
    tamper(file, truncated, (lines) => lines.slice(0, -3).concat(''));
    const truncatedRun = await gatehouse(['restore', '--in', truncated], targetEnv);
    expect(truncatedRun.code).toBe(2);
    expect(truncatedRun.stderr).toContain('truncated');

    // The refusals did not even open the database; and the restore into it goes through (it refuses a non-empty one).
    if (backend === 'pglite') expect(fs.existsSync(path.join(target.env.GATEHOUSE_DATA_DIR!, 'pgdata'))).toBe(false);
    else {
      const c = new pg.Client({ connectionString: target.env.DATABASE_URL });
      await c.connect();
      const { rows } = await c.query(`select count(*)::int as n from pg_tables where schemaname = 'public'`);
      await c.end();
      expect(rows[0].n).toBe(0);
    }
    const restored = await gatehouse(['restore', '--in', file, '--json'], targetEnv);
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ ok: true, rows: { account: 1, totp_credential: 1 } });
    const again = await gatehouse(['restore', '--in', file], targetEnv);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('the database is not empty');

    // The restored Gatehouse, at the same address and with the same master key.
    s = await startServer(
      backend,
      { GATEHOUSE_MASTER_KEY: key, PORT: port, GATEHOUSE_ISSUER: `http://localhost:${port}`, ...target.env },
      { testDb: await target.open() },
    );
    const jwks = (await (await fetch(`${s.url}/jwks`)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks), { issuer: s.url, audience: AUDIENCE, typ: 'at+jwt' });
    expect(payload.sub).toBe(client.client_id);
    expect((await clientToken(s.url, client.client_id, client.client_secret!)).status).toBe(200);
    expect((await clientToken(s.url, client.client_id, 'wrong')).status).toBe(401);
    const after = await adminOverHttp(s, person);
    expect(after.landed.status).toBe(200);
    expect(new URL(after.landed.url).pathname).toMatch(/^\/admin/);

    if (backend === 'postgres') {
      const verify = await gatehouse(['audit', 'verify', '--json'], { ...s.env, ...target.env });
      expect(verify.code, verify.stderr).toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
      await s.close();
    } else {
      await s.close();
      const verify = await gatehouse(['audit', 'verify', '--json'], targetEnv);
      expect(verify.code, verify.stderr).toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
    }
  }, 900_000);
});

describe('backup of the embedded database while the server runs', () => {
  it('is written by the running server on request (SIGUSR2), and restores', async () => {
    const dataDir = tmpDir();
    const port = await freePort();
    const env = {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      GATEHOUSE_ISSUER: `http://localhost:${port}`,
      GATEHOUSE_AUDIENCE: AUDIENCE,
      GATEHOUSE_DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
    };
    const child = spawn(process.execPath, ['src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    for (let i = 0; i < 2400 && !output.includes('gatehouse listening'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(output).toContain('gatehouse listening');

    // The command line cannot open the data directory the server holds; it asks the server.
    const file = path.join(tmpDir(), 'live.backup.gz');
    const b = await gatehouse(['backup', '--out', file, '--json'], env);
    expect(b.code, b.stderr).toBe(0);
    const out = JSON.parse(b.stdout);
    expect(out.via).toContain(`process ${child.pid}`);
    expect(out.rows.signing_key).toBeGreaterThan(0);
    expect(fs.existsSync(file)).toBe(true);
    expect(fs.readdirSync(dataDir).filter((f) => f.startsWith('backup-'))).toEqual([]);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);

    const target = tmpDir();
    fs.copyFileSync(path.join(dataDir, 'master.key'), path.join(target, 'master.key'));
    const r = await gatehouse(['restore', '--in', file, '--json'], { ...env, GATEHOUSE_DATA_DIR: target });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).rows).toEqual(out.rows);
    const v = await gatehouse(['audit', 'verify', '--json'], { ...env, GATEHOUSE_DATA_DIR: target });
    expect(v.code, v.stderr).toBe(0);
  }, 900_000);

  it('refuses to restore into the embedded database without the master key, rather than generate one', async () => {
    const target = tmpDir();
    const r = await gatehouse(['restore', '--in', __filename], {
      PORT: '1',
      GATEHOUSE_ISSUER: 'http://localhost:1',
      GATEHOUSE_DATA_DIR: target,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no master key');
    expect(fs.existsSync(path.join(target, 'master.key'))).toBe(false);
  }, 120_000);
});

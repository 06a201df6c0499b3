// The `gatehouse` command as an operator runs it: a child process with the server's environment.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatehouse } from '../helpers/cli.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { createPerson } from '../helpers/accounts.ts';
import { findValidInvitation } from '../../src/accounts/invitations.ts';
import { listAudit } from '../../src/audit/query.ts';

async function token(url: string, id: string, secret: string) {
  return fetch(`${url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
}

async function eventually(check: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('gatehouse CLI against a running server on PostgreSQL', () => {
  let s: TestServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    s = await startServer('postgres');
    env = s.env;
  });
  afterAll(() => s?.close());

  it('creates a client whose tokens verify offline with the expected claims', async () => {
    const created = await gatehouse(
      [
        'clients',
        'create',
        '--name',
        'ingest',
        '--grant',
        'client_credentials',
        '--role',
        'admin',
        '--permission',
        'agent:ingest:inject',
        '--permission',
        'config:prompts:read',
        '--json',
      ],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const out = JSON.parse(created.stdout);
    expect(Object.keys(out).sort()).toEqual(['client_id', 'client_secret']);

    const res = await token(s.url, out.client_id, out.client_secret);
    expect(res.status).toBe(200);
    const claims = await createVerifier({ issuer: s.url, audience: 'https://agents.example.com' }).verify(
      ((await res.json()) as any).access_token,
    );
    expect(claims).toMatchObject({ sub: out.client_id, roles: ['admin'], permissions: ['agent:ingest:inject', 'config:prompts:read'] });

    const list = JSON.parse((await gatehouse(['clients', 'list', '--json'], env)).stdout);
    expect(list.clients.find((c: any) => c.client_id === out.client_id)).toMatchObject({ name: 'ingest', roles: ['admin'] });
    expect(JSON.stringify(list)).not.toContain(out.client_secret);
  });

  it('rotates a secret with an overlap, and revokes at once with --overlap 0', async () => {
    const out = JSON.parse(
      (await gatehouse(['clients', 'create', '--name', 'rot', '--grant', 'client_credentials', '--role', 'viewer', '--json'], env)).stdout,
    );
    expect((await token(s.url, out.client_id, out.client_secret)).status).toBe(200);
    const rotated = JSON.parse((await gatehouse(['clients', 'rotate-secret', '--client-id', out.client_id, '--json'], env)).stdout);
    expect(rotated.client_secret).not.toBe(out.client_secret);
    await eventually(async () => (await token(s.url, out.client_id, rotated.client_secret)).status === 200, 'the new secret');
    expect((await token(s.url, out.client_id, out.client_secret)).status).toBe(200); // overlap

    const again = JSON.parse(
      (await gatehouse(['clients', 'rotate-secret', '--client-id', out.client_id, '--overlap', '0', '--json'], env)).stdout,
    );
    await eventually(async () => (await token(s.url, out.client_id, again.client_secret)).status === 200, 'the newest secret');
    expect((await token(s.url, out.client_id, rotated.client_secret)).status).toBe(401);
  });

  it('deletes a client and the running server refuses it within a poll', async () => {
    const out = JSON.parse(
      (await gatehouse(['clients', 'create', '--name', 'gone', '--grant', 'client_credentials', '--json'], env)).stdout,
    );
    expect((await token(s.url, out.client_id, out.client_secret)).status).toBe(200);
    const del = await gatehouse(['clients', 'delete', '--client-id', out.client_id], env);
    expect(del.code, del.stderr).toBe(0);
    await eventually(async () => (await token(s.url, out.client_id, out.client_secret)).status === 401, 'the deleted client to be refused');
  });

  it('lists and rotates keys', async () => {
    const keys = JSON.parse((await gatehouse(['keys', 'list', '--json'], env)).stdout).keys;
    expect(keys.map((k: any) => `${k.alg}:${k.state}`).sort()).toEqual(['ES256:current', 'ES256:next', 'RS256:current', 'RS256:next']);
    const tooSoon = await gatehouse(['keys', 'rotate'], env);
    expect(tooSoon.code).toBe(2);
    expect(tooSoon.stderr).toMatch(/JWKS cache lifetime/);
    const forced = await gatehouse(['keys', 'rotate', '--force', '--json'], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout).rotated).toHaveLength(2);
  });

  it('prints each kind of recovery link once, audited with its own action', async () => {
    const person = await createPerson(s, 'cli-reset@example.com', 'viewer');
    const made: Record<string, string> = {};
    for (const [what, purpose, action] of [
      ['password', 'password_reset', 'password.reset'],
      ['factors', 'reset', 'factor.reset'],
      ['all', 'reenroll', 'account.reenroll'],
    ] as const) {
      const r = await gatehouse(['users', 'reset', '--email', person.email, '--what', what, '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(Object.keys(out).sort()).toEqual(['email', 'expires_at', 'url', 'what']);
      expect(out).toMatchObject({ email: person.email, what });
      expect(out.url).toMatch(new RegExp(`^${s.url}/enroll/[A-Za-z0-9_-]{43}$`));
      const hours = (Date.parse(out.expires_at) - Date.now()) / 3600_000;
      expect(hours).toBeGreaterThan(23);
      expect(hours).toBeLessThanOrEqual(24);
      const token = out.url.split('/').pop();
      expect(await findValidInvitation(s.gatehouse.db.kysely, token)).toMatchObject({ purpose, account_id: person.id });
      const [event] = (await listAudit(s.gatehouse.db.kysely, { action, limit: 1 })).events;
      expect(event).toMatchObject({ actor: 'cli', target: person.id, outcome: 'success', details: { what } });
      expect(JSON.stringify(event)).not.toContain(token);
      made[what] = token;
    }
    // The latest link is the only one that works.
    expect(await findValidInvitation(s.gatehouse.db.kysely, made.password)).toBeNull();
    const bad = await gatehouse(['users', 'reset', '--email', person.email, '--what', 'everything', '--json'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
  });

  it('gives a clear error and a non-zero exit for bad input, with nothing on stdout in --json mode', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--role', 'superuser', '--json'], /roles\.0: is not a role/],
      [
        ['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--permission', 'agent inject', '--json'],
        /permissions\.0: must look like/,
      ],
      [['clients', 'create', '--name', 'x', '--grant', 'client_credentials', '--allow-cidr', '10.0.0.0/99', '--json'], /allowedCidrs\.0/],
      [['clients', 'create', '--name', 'x', '--grant', 'authorization_code', '--json'], /redirect URI/],
      [
        ['clients', 'create', '--name', 'x', '--grant', 'authorization_code', '--redirect-uri', 'http://evil.example.com/cb', '--json'],
        /https/,
      ],
      [['clients', 'create', '--name', '', '--grant', 'client_credentials', '--json'], /name is required/],
      [['clients', 'delete', '--client-id', 'svc_nope', '--json'], /no client with id/],
      [['clients', 'create', '--bogus', '--json'], /Unknown option/],
    ];
    for (const [args, message] of cases) {
      const r = await gatehouse(args, env);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    const { rows } = await (
      await import('kysely')
    ).sql<{ n: number }>`select count(*)::int as n from client where name = 'x'`.execute(s.gatehouse.db.kysely);
    expect(rows[0]!.n).toBe(0);
  });

  it('fails fast naming a bad configuration variable', async () => {
    const r = await gatehouse(['clients', 'list'], { ...env, GATEHOUSE_ISSUER: 'http://id.example.com' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/GATEHOUSE_ISSUER must use https/);
    const k = await gatehouse(['clients', 'list'], { ...env, GATEHOUSE_MASTER_KEY: 'c2hvcnQ=' });
    expect(k.stderr).toMatch(/GATEHOUSE_MASTER_KEY must be 32 bytes/);
    const p = await gatehouse(['clients', 'list'], { ...env, PORT: 'eighty' });
    expect(p.stderr).toMatch(/^gatehouse clients list: PORT/);
  });
});

describe('gatehouse CLI on the embedded database', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cli-'));
  const env = { GATEHOUSE_DATA_DIR: dir };
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('migrates, generates a master key once, and says clearly when the database is in use', async () => {
    const first = await gatehouse(['migrate', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ ok: true });
    expect(first.stderr).toMatch(/generated a master key/);
    expect(fs.statSync(path.join(dir, 'master.key')).mode & 0o777).toBe(0o600);
    const second = await gatehouse(['migrate', '--json'], env);
    expect(JSON.parse(second.stdout)).toEqual({ ok: true, applied: [] });
    expect(second.stderr).toBe('');

    // Hold the database the way a running server does (a live process's pid in the lock file).
    fs.writeFileSync(path.join(dir, 'gatehouse.lock'), String(process.pid));
    const busy = await gatehouse(['clients', 'list'], env);
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(new RegExp(`in use by process ${process.pid}`));
    // A lock left by a process that is gone is taken over.
    fs.writeFileSync(path.join(dir, 'gatehouse.lock'), '999999');
    const stale = await gatehouse(['clients', 'list', '--json'], env);
    expect(stale.code, stale.stderr).toBe(0);
    expect(JSON.parse(stale.stdout)).toEqual({ clients: [] });
  });

  it('refuses a master key that does not open the stored keys', async () => {
    const ok = await gatehouse(['keys', 'list', '--json'], env);
    expect(ok.code, ok.stderr).toBe(0);
    const wrong = await gatehouse(['keys', 'rotate', '--force'], {
      ...env,
      GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
    });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/wrong master key/);
  });
});

// `gatehouse master-key rotate` as an operator runs it: everything sealed moves to the new key in
// one transaction, the old key is refused at start with a clear message, and with the new key
// people still sign in (TOTP and backup codes) and tokens still sign and verify.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { gatehouse as run } from '../helpers/cli.ts';
import { createPgDatabase, type TestDb } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { createPerson } from '../helpers/accounts.ts';
import { adminOverHttp } from '../helpers/people.ts';
import { formField, HttpAgent } from '../helpers/http-signin.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { createClient } from '../../src/clients/clients.service.ts';

const AUDIENCE = 'https://agents.example.com';
/** Opening an embedded database is slow on a loaded machine: give each command time. */
const gatehouse = (args: string[], env: Record<string, string>) => run(args, env, { timeoutMs: 240_000 });
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c().catch(() => {});
});

async function clientToken(url: string, id: string, secret: string): Promise<string> {
  const res = await fetch(`${url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as any).access_token;
}

async function verifyWithJwks(s: TestServer, token: string) {
  const jwks = (await (await fetch(`${s.url}/jwks`)).json()) as JSONWebKeySet;
  return jwtVerify(token, createLocalJWKSet(jwks), { issuer: s.url, audience: AUDIENCE, typ: 'at+jwt' });
}

/** Password, then a backup code, to the admin console. */
async function signInWithBackupCode(s: TestServer, email: string, password: string, code: string) {
  const agent = new HttpAgent(s.url);
  const page = await agent.follow(await agent.request('/admin'));
  const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1];
  const second = await agent.follow(
    await agent.request(`/interaction/${uid}/login`, { form: { _csrf: formField(page.text, '_csrf')!, email, password } }),
  );
  return agent.follow(await agent.request(`/interaction/${uid}/backup-code`, { form: { _csrf: formField(second.text, '_csrf')!, code } }));
}

describe('master key rotation (PostgreSQL)', () => {
  it('re-seals everything, refuses the old key at start, and keeps sign-in and tokens working with the new key', async () => {
    const oldKey = crypto.randomBytes(32).toString('base64');
    const newKey = crypto.randomBytes(32).toString('base64');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-mk-'));
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const newKeyFile = path.join(dir, 'new.key');
    fs.writeFileSync(newKeyFile, newKey + '\n', { mode: 0o600 });
    const { url, drop } = await createPgDatabase();
    cleanups.push(drop);
    const open = async (): Promise<TestDb> => {
      const db = await openDatabase({ databaseUrl: url, dataDir: '' });
      return { db, url, drop: () => db.close() };
    };

    let s = await startServer('postgres', { GATEHOUSE_MASTER_KEY: oldKey }, { testDb: await open() });
    const port = s.env.PORT!;
    const issuer = `http://localhost:${port}`;
    const person = await createPerson(s, 'grace@example.com', 'owner');
    const client = await createClient(s.gatehouse.db.kysely, { name: 'svc', grants: ['client_credentials'], roles: ['viewer'] });
    const before = await clientToken(s.url, client.client_id, client.client_secret!);
    const sealedBefore = (await s.gatehouse.db.kysely.selectFrom('totp_credential').select('seed_sealed').executeTakeFirstOrThrow())
      .seed_sealed;
    await s.close();

    const env = { ...s.env, GATEHOUSE_MASTER_KEY: oldKey };
    // The same key again is refused, and changes nothing.
    const oldKeyFile = path.join(dir, 'old.key');
    fs.writeFileSync(oldKeyFile, oldKey, { mode: 0o600 });
    const same = await gatehouse(['master-key', 'rotate', '--new-key-file', oldKeyFile], env);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain('the new master key is the key in force');

    const rotated = await gatehouse(['master-key', 'rotate', '--new-key-file', newKeyFile, '--json'], env);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({ ok: true, signing_keys: 4, totp_seeds: 1, enrollment_seeds: 0 });
    expect(rotated.stdout).not.toContain(newKey);

    // The old key: refused at start, by the server and by the command line, saying why.
    const child = spawn(process.execPath, ['src/main.ts'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(1);
    expect(stderr).toContain('the master key is not this database');
    expect(stderr).toContain('the master key was rotated at');
    const cli = await gatehouse(['keys', 'list'], env);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('the master key was rotated at');

    // The new key: the same person signs in with TOTP and with a backup code; tokens verify.
    s = await startServer('postgres', { GATEHOUSE_MASTER_KEY: newKey, PORT: port, GATEHOUSE_ISSUER: issuer }, { testDb: await open() });
    const sealedAfter = (await s.gatehouse.db.kysely.selectFrom('totp_credential').select('seed_sealed').executeTakeFirstOrThrow())
      .seed_sealed;
    expect(sealedAfter).not.toBe(sealedBefore);
    const totp = await adminOverHttp(s, person);
    expect(totp.landed.status).toBe(200);
    expect(new URL(totp.landed.url).pathname).toMatch(/^\/admin/);
    const backup = await signInWithBackupCode(s, person.email, person.password, person.backupCodes[0]!);
    expect(backup.status).toBe(200);
    expect(new URL(backup.url).pathname).toMatch(/^\/admin/);
    expect((await verifyWithJwks(s, before)).payload.sub).toBe(client.client_id);
    const after = await clientToken(s.url, client.client_id, client.client_secret!);
    expect((await verifyWithJwks(s, after)).payload.sub).toBe(client.client_id);
    const verify = await gatehouse(['audit', 'verify', '--json'], { ...env, GATEHOUSE_MASTER_KEY: newKey });
    expect(verify.code, verify.stderr).toBe(0);
    const list = await gatehouse(['audit', 'list', '--action', 'key.master_rotate', '--json'], { ...env, GATEHOUSE_MASTER_KEY: newKey });
    expect(list.stdout).toContain('key.master_rotate');
    await s.close();
  }, 300_000);
});

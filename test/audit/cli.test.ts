// `gatehouse audit …` as an operator runs it: the real bin in a child process, on PostgreSQL,
// with the master key the signing keys were sealed with.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatehouse } from '../helpers/cli.ts';
import { freshDb, type TestDb } from '../helpers/db.ts';
import { appendMany, tamper, withKeys } from './helpers.ts';

describe('gatehouse audit on PostgreSQL', () => {
  let t: TestDb;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await freshDb('postgres');
    const { masterKey } = await withKeys(t.db.kysely);
    env = { DATABASE_URL: t.url!, GATEHOUSE_MASTER_KEY: masterKey.toString('base64') };
    await appendMany(t.db.kysely, 6);
  });
  afterAll(() => t.drop());

  it('verifies an intact log, signs a checkpoint, and names the altered row with exit 1', async () => {
    const empty = await gatehouse(['audit', 'verify', '--json'], env);
    expect(empty.code, empty.stderr).toBe(0);
    expect(JSON.parse(empty.stdout)).toEqual({ ok: true, events: 6, checkpoints: 0, last_checkpoint_seq: null });

    const cp = await gatehouse(['audit', 'checkpoint', '--json'], env);
    expect(cp.code, cp.stderr).toBe(0);
    expect(JSON.parse(cp.stdout)).toMatchObject({
      ok: true,
      checkpoint: { seq: 6, hash: expect.stringMatching(/^[0-9a-f]{64}$/), kid: expect.any(String) },
    });

    const ok = await gatehouse(['audit', 'verify', '--json'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ ok: true, events: 6, checkpoints: 1, last_checkpoint_seq: 6 });
    expect(ok.stderr).toBe('');

    await tamper(t.db.kysely, `update audit_event set actor = 'usr_someone_else' where seq = 3`);
    const bad = await gatehouse(['audit', 'verify', '--json'], env);
    expect(bad.code).toBe(1);
    const out = JSON.parse(bad.stdout);
    expect(out).toMatchObject({ ok: false, events: 6, first_bad_seq: 3 });
    expect(out.reason).toMatch(/event 3 does not match its hash/);
    expect(bad.stderr).toMatch(/^gatehouse audit verify: first bad event: seq 3: /);

    const text = await gatehouse(['audit', 'verify'], env);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/BROKEN at event 3/);
    expect(text.stderr).toMatch(/seq 3/);
  });

  it('lists events with filters', async () => {
    const r = await gatehouse(['audit', 'list', '--action', 'signin.success', '--limit', '2', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.events.map((e: any) => e.seq)).toEqual([6, 4]);
    expect(out.next_before_seq).toBe(4);
    const bad = await gatehouse(['audit', 'list', '--limit', '500', '--json'], env);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/limit/);
  });
});

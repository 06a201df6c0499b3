// The audit log leaves the database (issue 8 §4): `gatehouse audit checkpoint` with
// GATEHOUSE_AUDIT_EXPORT_DIR writes event files and signed, chained digests, and
// `gatehouse audit verify --export DIR` catches what the database alone cannot: a superuser who
// rewrote the tail with the triggers off, or deleted rows together with their checkpoints. Driven
// through the real bin on PostgreSQL, as an operator runs it; the attacks are really performed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, compactVerify, type JWK } from 'jose';
import { sql, type Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, exportedRow } from '../../src/audit/canonical.ts';
import { DIGEST_TYP, decodeDigestPayload, digestFileName, logFileName } from '../../src/audit/export.ts';
import type { Database } from '../../src/db/schema.ts';
import { loadKeySet } from '../../src/keys/keys.service.ts';
import { gatehouse } from '../helpers/cli.ts';
import { freshDb, type TestDb } from '../helpers/db.ts';
import { appendMany, asSuperuser, rewriteTail, withKeys } from './helpers.ts';

// Each test runs the bin several times (a child process each): on a loaded machine that takes longer
// than the default 60 s.
describe('audit export on PostgreSQL, through the CLI', { timeout: 240_000 }, () => {
  let t: TestDb;
  let db: Kysely<Database>;
  let dir: string;
  let env: Record<string, string>;
  let sealer: Awaited<ReturnType<typeof withKeys>>['sealer'];

  const checkpoint = async (extra: Record<string, string> = {}) => {
    const r = await gatehouse(['audit', 'checkpoint', '--json'], { ...env, ...extra });
    return { ...r, json: r.stdout ? JSON.parse(r.stdout) : null };
  };
  const verify = async (args: string[] = []) => {
    const r = await gatehouse(['audit', 'verify', '--export', dir, '--json', ...args], env);
    return { ...r, json: r.stdout ? JSON.parse(r.stdout) : null };
  };
  /** Events 1–5 exported, 6–8 exported, 9–10 after the last checkpoint. */
  const twoExports = async () => {
    await appendMany(db, 5);
    expect((await checkpoint()).code).toBe(0);
    await appendMany(db, 3);
    expect((await checkpoint()).code).toBe(0);
    await appendMany(db, 2);
  };

  beforeEach(async () => {
    t = await freshDb('postgres');
    db = t.db.kysely;
    const keys = await withKeys(db);
    sealer = keys.sealer;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-audit-export-'));
    env = { DATABASE_URL: t.url!, GATEHOUSE_MASTER_KEY: keys.masterKey.toString('base64'), GATEHOUSE_AUDIT_EXPORT_DIR: dir };
  });
  afterEach(async () => {
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports at each checkpoint, digests chain and verify with the JWKS across a key rotation, and verify --export passes', async () => {
    const jwks: JWK[] = [...(await loadKeySet(db, sealer)).published];
    await appendMany(db, 5);
    const first = await checkpoint();
    expect(first.code, first.stderr).toBe(0);
    expect(first.json).toMatchObject({
      ok: true,
      checkpoint: { seq: 5 },
      export: { dir, exported: { first_seq: 1, last_seq: 5, digest: digestFileName(1, 5), files: [logFileName(1, 5)] } },
    });
    // Nothing new: the checkpoint stands and nothing is written twice.
    const again = await checkpoint();
    expect(again.json).toMatchObject({ ok: true, checkpoint: { seq: 5 }, export: { exported: null } });

    const rotate = await gatehouse(['keys', 'rotate', '--force', '--json'], env); // audited: event 6
    expect(rotate.code, rotate.stderr).toBe(0);
    jwks.push(...(await loadKeySet(db, sealer)).published.filter((k) => !jwks.some((j) => j.kid === k.kid)));
    await appendMany(db, 3);
    const second = await checkpoint();
    expect(second.json).toMatchObject({ ok: true, export: { exported: { first_seq: 6, last_seq: 9 } } });
    await appendMany(db, 2);

    expect(fs.readdirSync(dir).sort()).toEqual([digestFileName(1, 5), logFileName(1, 5), digestFileName(6, 9), logFileName(6, 9)]);
    // Each line is the row as the chain hashes it, every column included.
    const lines = fs
      .readFileSync(path.join(dir, logFileName(1, 5)), 'utf8')
      .trim()
      .split('\n');
    const rows = await db.selectFrom('audit_event').selectAll().where('seq', '<=', '5').orderBy('seq').execute();
    expect(lines).toEqual(rows.map((r) => canonicalJson(exportedRow(r))));

    // Digests verify with the published keys (the first one's key now retired) and chain.
    const keySet = createLocalJWKSet({ keys: jwks });
    const d1 = fs.readFileSync(path.join(dir, digestFileName(1, 5)), 'utf8').trim();
    const d2 = fs.readFileSync(path.join(dir, digestFileName(6, 9)), 'utf8').trim();
    const v1 = await compactVerify(d1, keySet);
    const v2 = await compactVerify(d2, keySet);
    expect(v1.protectedHeader).toMatchObject({ typ: DIGEST_TYP, kid: expect.any(String) });
    expect(v2.protectedHeader.kid).not.toBe(v1.protectedHeader.kid); // signed after the rotation
    const p2 = decodeDigestPayload(d2);
    expect(p2).toMatchObject({ first_seq: 6, last_seq: 9, prev_hash: decodeDigestPayload(d1).head_hash });
    expect(p2.previous_digest).toMatchObject({ name: digestFileName(1, 5), signature: d1.split('.')[2] });

    const ok = await verify();
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json).toMatchObject({
      ok: true,
      events: 11,
      checkpoints: 2,
      export: { ok: true, digests: 2, exported_through: 9, not_yet_exported: { from: 10, through: 11 }, findings: [] },
    });
    expect(ok.stderr).toBe('');

    // The same with keys kept outside the database.
    const jwksFile = path.join(os.tmpdir(), `gatehouse-jwks-${process.pid}.json`);
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: jwks }));
    try {
      const withJwks = await verify(['--jwks', jwksFile]);
      expect(withJwks.code, withJwks.stderr).toBe(0);
      fs.writeFileSync(jwksFile, JSON.stringify({ keys: jwks.filter((k) => k.kid !== v1.protectedHeader.kid) }));
      const missingKey = await verify(['--jwks', jwksFile]);
      expect(missingKey.code).toBe(1);
      expect(missingKey.stderr).toContain(`digest ${digestFileName(1, 5)}: its signing key ${v1.protectedHeader.kid} is unknown`);
    } finally {
      fs.rmSync(jwksFile, { force: true });
    }
  });

  it('names the first event of a tail rewritten with the triggers off and the hashes recomputed', async () => {
    await twoExports();
    // The superuser rewrites event 7 onwards (already exported, 9–10 not yet) and deletes the
    // checkpoint that covers it: the database's own chain verifies again.
    await rewriteTail(db, 7, (row) => {
      row.actor = 'usr_innocent';
    });
    await asSuperuser(db, (conn) => sql`delete from audit_checkpoint where seq >= 7`.execute(conn).then(() => undefined));
    const inDb = await gatehouse(['audit', 'verify', '--json'], env);
    expect(inDb.code, 'the database alone cannot tell').toBe(0);

    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ ok: false, first_bad_seq: 7, export: { ok: false } });
    expect(r.json.export.findings).toEqual([
      {
        kind: 'database',
        seq: 7,
        file: logFileName(6, 8),
        message: `event 7 was changed in the database (actor differs from ${logFileName(6, 8)}, signed by digest ${digestFileName(6, 8)})`,
      },
    ]);
    expect(r.stderr).toBe(
      `gatehouse audit verify: export: event 7 was changed in the database (actor differs from ${logFileName(6, 8)}, signed by digest ${digestFileName(6, 8)})\n`,
    );

    // The next checkpoint refuses to chain the rewritten events onto the export.
    const cp = await checkpoint();
    expect(cp.code).toBe(1);
    expect(cp.json).toMatchObject({ ok: false, checkpoint: { seq: 10 } });
    expect(cp.stderr).toMatch(/event 9 does not chain onto the last exported event .*events 9 to 10 not exported/);
  });

  it('names the first event deleted together with its checkpoints, also after new events took its seq', async () => {
    await twoExports();
    await asSuperuser(db, async (conn) => {
      await sql`delete from audit_checkpoint where seq >= 4`.execute(conn);
      await sql`delete from audit_event where seq >= 4`.execute(conn);
    });
    expect((await gatehouse(['audit', 'verify'], env)).code, 'the database alone cannot tell').toBe(0);

    const deleted = await verify();
    expect(deleted.code).toBe(1);
    expect(deleted.json).toMatchObject({ ok: false, events: 3, first_bad_seq: 4 });
    expect(deleted.json.export.findings).toEqual([
      {
        kind: 'database',
        seq: 4,
        file: logFileName(1, 5),
        message: `event 4 was deleted from the database: ${logFileName(1, 5)} holds it, signed by digest ${digestFileName(1, 5)}`,
      },
    ]);

    // New events now take seq 4 onwards: still caught, as a change.
    await appendMany(db, 6);
    const replaced = await verify();
    expect(replaced.code).toBe(1);
    expect(replaced.json.first_bad_seq).toBe(4);
    expect(replaced.stderr).toMatch(/^gatehouse audit verify: export: event 4 was changed in the database \(/);
  });

  it('names an altered export file, and an altered digest', async () => {
    await twoExports();
    const file = path.join(dir, logFileName(1, 5));
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"usr_person2"', '"usr_person0"'));
    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.json.export.findings).toEqual([
      expect.objectContaining({
        kind: 'file',
        file: logFileName(1, 5),
        message: expect.stringMatching(/was altered: its SHA-256 is [0-9a-f]{64}, digest .* signed [0-9a-f]{64}$/),
      }),
    ]);
    expect(r.stderr).toContain(`export: ${logFileName(1, 5)} was altered`);

    const digest = path.join(dir, digestFileName(6, 8));
    fs.chmodSync(digest, 0o644);
    const [h, p, s] = fs.readFileSync(digest, 'utf8').trim().split('.');
    const forged = { ...JSON.parse(Buffer.from(p!, 'base64url').toString()), head_hash: '0'.repeat(64) };
    fs.writeFileSync(digest, `${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}\n`);
    const r2 = await verify();
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(
      new RegExp(
        `export: digest ${digestFileName(6, 8)}: its signature does not verify with key [\\w-]+: the digest was altered or forged`,
      ),
    );
  });

  it('reports a missing digest in the middle as a gap, and a checkpoint the export fell behind', async () => {
    await twoExports();
    expect((await checkpoint()).json).toMatchObject({ export: { exported: { first_seq: 9, last_seq: 10 } } });
    fs.rmSync(path.join(dir, digestFileName(6, 8)));
    const r = await verify();
    expect(r.code).toBe(1);
    expect(r.json.export.findings).toEqual([
      {
        kind: 'gap',
        seq: 6,
        through: 8,
        message: `events 6 to 8 have no digest (between ${digestFileName(1, 5)} and ${digestFileName(9, 10)}; ${digestFileName(9, 10)} names ${digestFileName(6, 8)} as the digest before it)`,
        since: decodeDigestPayload(fs.readFileSync(path.join(dir, digestFileName(1, 5)), 'utf8')).time,
        until: decodeDigestPayload(fs.readFileSync(path.join(dir, digestFileName(9, 10)), 'utf8')).time,
      },
    ]);
    expect(r.json.first_bad_seq).toBeUndefined();

    // The newest digests removed too: the database's checkpoint at 10 is beyond the export.
    fs.rmSync(path.join(dir, digestFileName(9, 10)));
    const r2 = await verify();
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/export: events 6 to 10 have no digest, though a checkpoint signed at .* covers them/);
  });

  it('records the checkpoint when the directory is unwritable, says so, and exports everything once it is back', async () => {
    await appendMany(db, 4);
    const notADir = path.join(dir, 'not-a-directory');
    fs.writeFileSync(notADir, '');
    const failed = await checkpoint({ GATEHOUSE_AUDIT_EXPORT_DIR: notADir });
    expect(failed.code).toBe(1);
    expect(failed.json).toMatchObject({
      ok: false,
      checkpoint: { seq: 4 },
      export: { dir: notADir, error: expect.stringContaining(notADir) },
    });
    expect(failed.stderr).toMatch(/^gatehouse audit checkpoint: cannot read the audit export directory/);
    expect((await gatehouse(['audit', 'verify', '--json'], env)).stdout).toContain('"last_checkpoint_seq":4');

    const behind = await verify();
    expect(behind.code).toBe(1);
    expect(behind.stderr).toMatch(/events 1 to 4 have no digest, though a checkpoint .* covers them/);

    await appendMany(db, 2);
    const caughtUp = await checkpoint();
    expect(caughtUp.json).toMatchObject({ ok: true, export: { exported: { first_seq: 1, last_seq: 6 } } });
    expect((await verify()).code).toBe(0);
  });
});

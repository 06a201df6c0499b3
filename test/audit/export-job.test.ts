// The export as the server runs it (the periodic checkpoint job, src/jobs/background.ts) on both
// databases, and several instances exporting at once on one PostgreSQL.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createGatehouse } from '../../src/app.ts';
import { appendAudit } from '../../src/audit/audit.service.ts';
import { loadConfig } from '../../src/config/config.ts';
import { checkpointAndExport, digestFileName, exportThrough, listDigestFiles, logFileName } from '../../src/audit/export.ts';
import { verifyExport } from '../../src/audit/verify-export.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import { openDatabase, type Connection } from '../../src/db/connect.ts';
import type { Database } from '../../src/db/schema.ts';
import { createMetrics } from '../../src/http/metrics.ts';
import { checkpointJob } from '../../src/jobs/background.ts';
import { createLogger } from '../../src/log.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';
import { appendMany, rewriteTail, sample, withKeys } from './helpers.ts';

function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: createLogger('info', stream), lines };
}

describe.each(BACKENDS)('the periodic checkpoint job exports on %s', (backend) => {
  let t: TestDb;
  let db: Kysely<Database>;
  let dir: string;
  beforeEach(async () => {
    t = await freshDb(backend);
    db = t.db.kysely;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-audit-export-'));
  });
  afterEach(async () => {
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports each checkpoint, counts it, and verify --export catches a rewritten tail', async () => {
    const { sealer } = await withKeys(db);
    const metrics = createMetrics();
    const { log, lines } = capturedLog();
    const job = checkpointJob({ db, sealer, log, auditExportDir: dir, metrics });
    await appendMany(db, 4);
    await job();
    await job(); // nothing new
    await appendMany(db, 3);
    await job();
    expect((await listDigestFiles(dir)).map((d) => d.name)).toEqual([digestFileName(1, 4), digestFileName(5, 7)]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/gatehouse_audit_exports_total\{outcome="written"\} 2/);
    expect(text).toMatch(/gatehouse_audit_exports_total\{outcome="nothing_new"\} 1/);
    expect(text).toMatch(/gatehouse_audit_exported_seq 7/);
    expect(lines.filter((l) => l.msg === 'audit exported').map((l) => l.last_seq)).toEqual([4, 7]);
    expect(await verifyExport(db, dir, { pageSize: 2 })).toEqual({
      ok: true,
      digests: 2,
      exportedThrough: 7,
      notYetExported: null,
      findings: [],
      firstBadSeq: null,
    });

    await rewriteTail(db, 3, (row) => {
      row.details = { method: 'forged' };
    });
    expect(await verifyAudit(db)).toMatchObject({ ok: false }); // the checkpoint at 4 still catches this one…
    const r = await verifyExport(db, dir, { pageSize: 2 });
    expect(r).toMatchObject({ ok: false, firstBadSeq: 3 }); // …and the export names the event
    expect(r.findings).toEqual([
      expect.objectContaining({
        kind: 'database',
        seq: 3,
        message: expect.stringMatching(/^event 3 was changed in the database \(details differs/),
      }),
    ]);
  });

  it('an unwritable directory fails the export, not the checkpoint: logged, counted, retried at the next one', async () => {
    const { sealer } = await withKeys(db);
    const metrics = createMetrics();
    const { log, lines } = capturedLog();
    const notADir = path.join(dir, 'file');
    fs.writeFileSync(notADir, '');
    await appendMany(db, 3);
    await checkpointJob({ db, sealer, log, auditExportDir: notADir, metrics })();
    expect(await verifyAudit(db)).toMatchObject({ ok: true, lastCheckpointSeq: 3 });
    expect(await metrics.registry.metrics()).toMatch(/gatehouse_audit_exports_total\{outcome="failed"\} 1/);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        checkpoint_seq: 3,
        dir: notADir,
        msg: 'audit export failed; the checkpoint is recorded and the next one retries the export',
      }),
    );
    await appendMany(db, 1);
    await checkpointJob({ db, sealer, log, auditExportDir: dir, metrics })();
    expect((await listDigestFiles(dir)).map((d) => d.name)).toEqual([digestFileName(1, 4)]);
  });

  it('never overwrites a file: one of the same name with other bytes is refused and left alone', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 2);
    fs.writeFileSync(path.join(dir, logFileName(1, 2)), 'someone else\n');
    const r = await checkpointAndExport(db, sealer, dir);
    expect(r.checkpoint).toMatchObject({ seq: 2 });
    expect(r.exportError?.message).toBe(
      `${path.join(dir, logFileName(1, 2))} already exists with other content; it is never overwritten (run gatehouse audit verify --export)`,
    );
    expect(fs.readFileSync(path.join(dir, logFileName(1, 2)), 'utf8')).toBe('someone else\n');
    expect(fs.readdirSync(dir)).toEqual([logFileName(1, 2)]); // no digest, no temporary file left
  });
});

describe('several instances exporting at once on PostgreSQL', () => {
  let t: TestDb;
  let instances: Connection[];
  let dir: string;
  beforeEach(async () => {
    t = await freshDb('postgres');
    instances = await Promise.all(Array.from({ length: 3 }, () => openDatabase({ databaseUrl: t.url, dataDir: '', poolSize: 3 })));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-audit-export-'));
  });
  afterEach(async () => {
    await Promise.all(instances.map((i) => i.close()));
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('checkpoints racing with appends export contiguous, non-overlapping ranges that verify', async () => {
    const { sealer } = await withKeys(t.db.kysely);
    for (let round = 0; round < 4; round++) {
      await Promise.all([
        ...Array.from({ length: 9 }, (_, i) => appendAudit(instances[i % 3]!.kysely, sample(round * 10 + i))),
        ...instances.map((i) => checkpointAndExport(i.kysely, sealer, dir).then((r) => expect(r.exportError).toBeNull())),
      ]);
    }
    await checkpointAndExport(t.db.kysely, sealer, dir);
    const digests = await listDigestFiles(dir);
    digests.forEach((d, i) => expect(d.first).toBe(i === 0 ? 1 : digests[i - 1]!.last + 1));
    expect(digests.at(-1)!.last).toBe(36);
    expect(await verifyExport(t.db.kysely, dir)).toMatchObject({ ok: true, exportedThrough: 36, findings: [] });
  });

  it('two instances exporting the same range: one writes it, the other finds it done', async () => {
    const { sealer } = await withKeys(t.db.kysely);
    await appendMany(t.db.kysely, 5);
    const results = await Promise.all(instances.map((i) => exportThrough(i.kysely, sealer, dir, 5)));
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(fs.readdirSync(dir).sort()).toEqual([digestFileName(1, 5), logFileName(1, 5)]);
  });
});

describe('GATEHOUSE_AUDIT_EXPORT_DIR', () => {
  it('is resolved to an absolute path, and the server refuses to start without the directory', async () => {
    expect(loadConfig({ GATEHOUSE_AUDIT_EXPORT_DIR: 'audit-export' }).auditExportDir).toBe(path.resolve('audit-export'));
    expect(loadConfig({}).auditExportDir).toBeNull();
    expect(() => loadConfig({ GATEHOUSE_AUDIT_EXPORT_DIR: 'a\nb' })).toThrow(/GATEHOUSE_AUDIT_EXPORT_DIR must be a directory path/);
    const missing = path.join(os.tmpdir(), `gatehouse-no-such-dir-${process.pid}`);
    await expect(
      createGatehouse(loadConfig({ GATEHOUSE_AUDIT_EXPORT_DIR: missing, GATEHOUSE_DATA_DIR: '/nonexistent-not-used' })),
    ).rejects.toThrow(`GATEHOUSE_AUDIT_EXPORT_DIR: ${missing} is not an existing directory`);
  });
});

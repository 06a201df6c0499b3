// Several instances appending at once on one PostgreSQL: the advisory lock serializes them into
// one gap-free chain. (PGlite is one process, one connection: nothing to race.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, AuditQueue } from '../../src/audit/audit.service.ts';
import { writeCheckpoint } from '../../src/audit/checkpoint.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import { openDatabase, type Connection } from '../../src/db/connect.ts';
import { freshDb, type TestDb } from '../helpers/db.ts';
import { sample, withKeys } from './helpers.ts';

describe('concurrent appends on PostgreSQL', () => {
  let t: TestDb;
  let instances: Connection[];

  beforeAll(async () => {
    t = await freshDb('postgres');
    instances = await Promise.all(Array.from({ length: 5 }, () => openDatabase({ databaseUrl: t.url, dataDir: '', poolSize: 5 })));
  });
  afterAll(async () => {
    await Promise.all(instances.map((i) => i.close()));
    await t.drop();
  });

  it('50 appends from five pools at once make one gap-free, valid chain', async () => {
    const appended = await Promise.all(Array.from({ length: 50 }, (_, i) => appendAudit(instances[i % 5]!.kysely, sample(i + 1))));
    expect(appended.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    const bySeq = new Map(appended.map((e) => [e.seq, e]));
    for (let s = 2; s <= 50; s++) expect(bySeq.get(s)!.prevHash).toBe(bySeq.get(s - 1)!.hash);
    expect(await verifyAudit(t.db.kysely)).toMatchObject({ ok: true, events: 50 });
  });

  it('queues on several instances, direct appends and checkpoints interleave without a gap', async () => {
    const { sealer } = await withKeys(t.db.kysely);
    const queues = instances.map((i) => new AuditQueue(i.kysely));
    await Promise.all([
      ...Array.from({ length: 100 }, (_, i) => queues[i % 5]!.append(sample(i))),
      ...Array.from({ length: 20 }, (_, i) => appendAudit(instances[i % 5]!.kysely, sample(i))),
      ...instances.map((i) => writeCheckpoint(i.kysely, sealer)),
    ]);
    await writeCheckpoint(t.db.kysely, sealer);
    const r = await verifyAudit(t.db.kysely);
    expect(r).toMatchObject({ ok: true, events: 170, lastCheckpointSeq: 170 });
  });
});

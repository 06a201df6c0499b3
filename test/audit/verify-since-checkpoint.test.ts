// The admin page's verification (issue 7 §8): the newest signed checkpoint and the events after
// it, not the whole chain on every view; tampering after the checkpoint is still caught.
import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeCheckpoint } from '../../src/audit/checkpoint.ts';
import { verifyAuditSinceCheckpoint } from '../../src/audit/verify.ts';
import type { Database } from '../../src/db/schema.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';
import { appendMany, tamper, withKeys } from './helpers.ts';

describe.each(BACKENDS)('verification since the last checkpoint on %s', (backend) => {
  let t: TestDb;
  let db: Kysely<Database>;
  beforeEach(async () => {
    t = await freshDb(backend);
    db = t.db.kysely;
  });
  afterEach(() => t.drop());

  it('walks the whole chain without a checkpoint, and only what follows one otherwise', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 5);
    expect(await verifyAuditSinceCheckpoint(db)).toEqual({ ok: true, events: 5, checkpoints: 0, lastCheckpointSeq: null });
    await writeCheckpoint(db, sealer);
    await appendMany(db, 7);
    expect(await verifyAuditSinceCheckpoint(db, { pageSize: 3 })).toEqual({
      ok: true,
      events: 12,
      checkpoints: 1,
      lastCheckpointSeq: 5,
      fromCheckpointSeq: 5,
    });
  });

  it('catches an event altered, or the tail deleted, after the checkpoint', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 4);
    await writeCheckpoint(db, sealer);
    await appendMany(db, 4);
    await tamper(db, `update audit_event set details = '{"method":"forged"}' where seq = 7`);
    expect(await verifyAuditSinceCheckpoint(db)).toMatchObject({ ok: false, firstBadSeq: 7 });
    await tamper(db, 'delete from audit_event where seq >= 4');
    expect(await verifyAuditSinceCheckpoint(db)).toMatchObject({ ok: false, firstBadSeq: 4, reason: /missing/ });
  });
});

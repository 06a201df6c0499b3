// The audit log on real databases: the chain, the append-only triggers, and verification
// against each way of tampering with it.
import { type Kysely, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendAudit, appendAuditBatch, AuditQueue } from '../../src/audit/audit.service.ts';
import { GENESIS_HASH, eventHash } from '../../src/audit/canonical.ts';
import { CHECKPOINT_TYP, scheduleCheckpoints, writeCheckpoint } from '../../src/audit/checkpoint.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import type { Database } from '../../src/db/schema.ts';
import { eraseExpiredKeys, rotateKeys } from '../../src/keys/keys.service.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';
import { appendMany, POLICY, sample, tamper, withKeys } from './helpers.ts';
import { CompactSign, generateKeyPair } from 'jose';

describe.each(BACKENDS)('audit log on %s', (backend) => {
  let t: TestDb;
  let db: Kysely<Database>;

  beforeEach(async () => {
    t = await freshDb(backend);
    db = t.db.kysely;
  });
  afterEach(() => t.drop());

  it('chains appended events from the genesis hash, and verifies', async () => {
    const first = await appendAudit(db, sample(1));
    expect(first).toMatchObject({ seq: 1, prevHash: GENESIS_HASH, action: 'signin.failure', ip: '192.0.2.1', requestId: 'req-1' });
    expect(first.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const second = await appendAudit(db, sample(2, { details: { method: 'passkey', odd: ['é', 1e21, 0.1, null, { z: 1, a: 2 }] } }));
    expect(second).toMatchObject({ seq: 2, prevHash: first.hash });
    await appendMany(db, 40);
    expect(await verifyAudit(db)).toEqual({ ok: true, events: 42, checkpoints: 0, lastCheckpointSeq: null });
    // Across page boundaries too.
    expect(await verifyAudit(db, { pageSize: 5 })).toMatchObject({ ok: true, events: 42 });
    // The stored row is what was hashed: recompute from a plain select.
    const row = await db.selectFrom('audit_event').selectAll().where('seq', '=', '2').executeTakeFirstOrThrow();
    expect(eventHash({ ...row, seq: 2, time: new Date(row.time).toISOString() })).toBe(second.hash);
  });

  it('an empty log verifies', async () => {
    expect(await verifyAudit(db)).toEqual({ ok: true, events: 0, checkpoints: 0, lastCheckpointSeq: null });
  });

  it('refuses UPDATE, DELETE and TRUNCATE in the database itself, on events and checkpoints', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 3);
    await writeCheckpoint(db, sealer);
    const refused = async (statement: string, message: RegExp) => {
      await expect(sql.raw(statement).execute(db)).rejects.toThrow(message);
    };
    await refused(`update audit_event set details = '{"method":"forged"}' where seq = 2`, /audit_event is append-only: UPDATE refused/);
    await refused('delete from audit_event where seq = 3', /audit_event is append-only: DELETE refused/);
    await refused('delete from audit_event where false', /append-only: DELETE refused/);
    await refused('truncate audit_event', /audit_event is append-only: TRUNCATE refused/);
    await refused(`update audit_checkpoint set hash = 'x'`, /audit_checkpoint is append-only: UPDATE refused/);
    await refused('delete from audit_checkpoint', /audit_checkpoint is append-only: DELETE refused/);
    await refused('truncate audit_checkpoint', /audit_checkpoint is append-only: TRUNCATE refused/);
    expect(await verifyAudit(db)).toEqual({ ok: true, events: 3, checkpoints: 1, lastCheckpointSeq: 3 });
  });

  it('writes the event with the change it records, or neither', async () => {
    await expect(
      db.transaction().execute(async (trx) => {
        await appendAudit(trx, sample(1, { action: 'client.delete', actor: 'cli', target: 'svc_gone' }));
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect((await db.selectFrom('audit_event').selectAll().execute()).length).toBe(0);
    await db.transaction().execute(async (trx) => {
      await sql`insert into change_version (topic) values ('audit-test')`.execute(trx);
      await appendAudit(trx, sample(2, { action: 'client.update', actor: 'cli' }));
    });
    const after = await appendAudit(db, sample(3));
    expect(after.seq).toBe(2); // the rolled-back append left no gap
    expect(await verifyAudit(db)).toMatchObject({ ok: true, events: 2 });
  });

  it('refuses a secret before touching the database', async () => {
    await expect(appendAudit(db, sample(1, { details: { method: 'password', password: 'correct horse battery staple' } }))).rejects.toThrow(
      /details\.password: is named like a secret/,
    );
    await expect(appendAuditBatch(db, [sample(1), sample(2, { details: { token: 'x' } })])).rejects.toThrow(/details\.token/);
    expect((await db.selectFrom('audit_event').selectAll().execute()).length).toBe(0);
  });

  it('group-commits queued events in order, gap-free', async () => {
    const queue = new AuditQueue(db, { maxBatch: 7 });
    const appended = await Promise.all(Array.from({ length: 30 }, (_, i) => queue.append(sample(i + 1))));
    expect(appended.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(appended.map((e) => e.requestId)).toEqual(Array.from({ length: 30 }, (_, i) => `req-${i + 1}`));
    await expect(queue.append(sample(31, { actor: 'root' }))).rejects.toThrow(/actor/);
    await queue.flush();
    expect(await verifyAudit(db)).toMatchObject({ ok: true, events: 30 });
  });

  it('names the altered row when one row was changed behind the trigger', async () => {
    await appendMany(db, 12);
    await tamper(db, `update audit_event set details = '{"method":"passkey","attempt":7}' where seq = 7`);
    const r = await verifyAudit(db, { pageSize: 4 });
    expect(r).toMatchObject({ ok: false, events: 12, firstBadSeq: 7 });
    expect(!r.ok && r.reason).toMatch(/event 7 does not match its hash/);
  });

  it('names a row deleted from the middle', async () => {
    await appendMany(db, 10);
    await tamper(db, 'delete from audit_event where seq = 4');
    expect(await verifyAudit(db)).toMatchObject({
      ok: false,
      events: 9,
      firstBadSeq: 4,
      reason: 'event 4 is missing: the next stored event is 5',
    });
  });

  it('names the first missing row when the newest rows were deleted after a checkpoint', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 10);
    expect(await writeCheckpoint(db, sealer)).toMatchObject({ seq: 10 });
    await appendMany(db, 2);
    await tamper(db, 'delete from audit_event where seq >= 8');
    const r = await verifyAudit(db);
    expect(r).toMatchObject({ ok: false, events: 7, firstBadSeq: 8 });
    expect(!r.ok && r.reason).toMatch(/events 8 to 10 are missing: a checkpoint signed at .* covers event 10, but the log ends at 7/);
  });

  it('catches a row rewritten with every later hash recomputed, through the checkpoint after it', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 5);
    await writeCheckpoint(db, sealer);
    await appendMany(db, 5);
    await writeCheckpoint(db, sealer);
    // The attacker knows the algorithm: rewrite event 7 and re-chain 7…10.
    const rows = await db.selectFrom('audit_event').selectAll().where('seq', '>=', '6').orderBy('seq').execute();
    let prev = rows[0]!.hash;
    const statements: string[] = [];
    for (const row of rows.slice(1)) {
      const details = Number(row.seq) === 7 ? { method: 'password', attempt: 999 } : row.details;
      const hash = eventHash({ ...row, details, seq: Number(row.seq), time: new Date(row.time).toISOString(), prev_hash: prev });
      statements.push(
        `update audit_event set details = '${JSON.stringify(details)}', prev_hash = '${prev}', hash = '${hash}' where seq = ${row.seq}`,
      );
      prev = hash;
    }
    await tamper(db, statements);
    const r = await verifyAudit(db);
    expect(r).toMatchObject({ ok: false, firstBadSeq: 6 });
    expect(!r.ok && r.reason).toMatch(/differs from its signed checkpoint: an event from 6 to 10 was rewritten/);
  });

  it('refuses a checkpoint whose JWS was altered, or forged with another key under the real kid', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 4);
    const cp = (await writeCheckpoint(db, sealer))!;
    const [h, p, s] = cp.jws.split('.');
    const flipped = `${h}.${p}.${s!.startsWith('A') ? 'B' : 'A'}${s!.slice(1)}`;
    await tamper(db, `update audit_checkpoint set jws = '${flipped}' where seq = 4`);
    const r = await verifyAudit(db);
    expect(r).toMatchObject({ ok: false, firstBadSeq: 4 });
    expect(!r.ok && r.reason).toMatch(/checkpoint at event 4 is not genuine: its signature does not verify/);

    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new CompactSign(new TextEncoder().encode(JSON.stringify({ hash: cp.hash, seq: 4, time: cp.time })))
      .setProtectedHeader({ alg: 'ES256', kid: cp.kid, typ: CHECKPOINT_TYP })
      .sign(privateKey);
    await tamper(db, `update audit_checkpoint set jws = '${forged}' where seq = 4`);
    expect(await verifyAudit(db)).toMatchObject({ ok: false, firstBadSeq: 4, reason: expect.stringMatching(/signature does not verify/) });

    // The signature is genuine but the columns beside it were edited.
    await tamper(db, `update audit_checkpoint set jws = '${cp.jws}', time = time + interval '1 day' where seq = 4`);
    expect(await verifyAudit(db)).toMatchObject({
      ok: false,
      firstBadSeq: 4,
      reason: expect.stringMatching(/signed \{seq, hash, time\} differs/),
    });
  });

  it('writes one checkpoint per head, and old checkpoints still verify after the key is retired and erased', async () => {
    const { sealer } = await withKeys(db);
    expect(await writeCheckpoint(db, sealer)).toBeNull(); // nothing to sign yet
    await appendMany(db, 3);
    const a = await writeCheckpoint(db, sealer);
    const again = await writeCheckpoint(db, sealer);
    expect(again).toEqual(a);
    const header = JSON.parse(Buffer.from(a!.jws.split('.')[0]!, 'base64url').toString());
    expect(header).toEqual({ alg: 'ES256', kid: a!.kid, typ: CHECKPOINT_TYP });

    await rotateKeys(db, sealer, POLICY, { force: true });
    await eraseExpiredKeys(db, new Date(Date.now() + 86400_000));
    await appendMany(db, 2);
    const b = await writeCheckpoint(db, sealer);
    expect(b!.kid).not.toBe(a!.kid);
    expect(await verifyAudit(db)).toEqual({ ok: true, events: 5, checkpoints: 2, lastCheckpointSeq: 5 });
  });

  it('checkpoints on a schedule until stopped', async () => {
    const { sealer } = await withKeys(db);
    await appendMany(db, 3);
    const errors: unknown[] = [];
    const schedule = scheduleCheckpoints({ db, sealer, intervalMs: 20, onError: (e) => errors.push(e) });
    for (let i = 0; i < 100 && !(await db.selectFrom('audit_checkpoint').selectAll().executeTakeFirst()); i++)
      await new Promise((r) => setTimeout(r, 20));
    await appendMany(db, 2);
    for (let i = 0; i < 100 && !(await db.selectFrom('audit_checkpoint').selectAll().where('seq', '=', '5').executeTakeFirst()); i++)
      await new Promise((r) => setTimeout(r, 20));
    await schedule.stop();
    expect(errors).toEqual([]);
    expect(await verifyAudit(db)).toEqual({ ok: true, events: 5, checkpoints: 2, lastCheckpointSeq: 5 });
  });
});

// The only Kysely code for the audit log. Rows are never updated or deleted (the database
// refuses it); every function here reads, or inserts under the append lock.
import { type Selectable, type Transaction, sql } from 'kysely';
import type { AuditCheckpointTable, AuditEventTable, AuditOutcome, Database } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export type AuditEventRow = Selectable<AuditEventTable>;
export type AuditCheckpointRow = Selectable<AuditCheckpointTable>;

export interface NewAuditEventRow {
  seq: number;
  time: Date;
  actor: string;
  ip: string | null;
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  request_id: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
  source: string | null;
  event_id: string | null;
  producer_time: string | null;
}

/**
 * Serialize appends across every instance until the transaction ends: the next seq and
 * prev_hash are read after this, so no two appends can chain onto the same row.
 */
export async function lockAppends(trx: Transaction<Database>): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('gatehouse.audit'))`.execute(trx);
}

/**
 * The chain's head and the database's clock, read after the lock. One clock for every instance
 * (the database's), truncated to milliseconds so that it reads back exactly as hashed.
 */
export async function chainHead(trx: Transaction<Database>): Promise<{ seq: number; hash: string | null; now: Date }> {
  const { rows } = await sql<{ now: Date; seq: string | null; hash: string | null }>`
    select date_trunc('milliseconds', clock_timestamp()) as now, last.seq, last.hash
    from (select 1) as one
    left join lateral (select seq, hash from audit_event order by seq desc limit 1) as last on true`.execute(trx);
  const row = rows[0]!;
  return { seq: row.seq === null ? 0 : Number(row.seq), hash: row.hash, now: new Date(row.now) };
}

/**
 * Serialize checkpoint exports across every instance until the transaction ends (transaction-
 * scoped, so it works through a transaction-mode pooler). A lock of its own, not the append lock:
 * appends go on while an export writes its files.
 */
export async function lockExport(trx: Transaction<Database>): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('gatehouse.audit.export'))`.execute(trx);
}

export async function databaseNow(db: Db): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select date_trunc('milliseconds', clock_timestamp()) as now`.execute(db);
  return new Date(rows[0]!.now);
}

export async function insertEvents(trx: Transaction<Database>, rows: NewAuditEventRow[]): Promise<void> {
  await trx
    .insertInto('audit_event')
    .values(rows.map((r) => ({ ...r, details: JSON.stringify(r.details) })))
    .execute();
}

/**
 * The events already appended under these (source, event_id) keys, read under the append lock
 * so that no other append can add one meanwhile: the idempotency check of POST /audit/events.
 */
export function eventsByEventId(trx: Transaction<Database>, source: string, eventIds: string[]): Promise<AuditEventRow[]> {
  if (eventIds.length === 0) return Promise.resolve([]);
  return trx.selectFrom('audit_event').selectAll().where('source', '=', source).where('event_id', 'in', eventIds).execute();
}

/** Events with seq > afterSeq, in order: verification walks the log a page at a time. */
export function eventsAfter(db: Db, afterSeq: number, limit: number): Promise<AuditEventRow[]> {
  return db.selectFrom('audit_event').selectAll().where('seq', '>', String(afterSeq)).orderBy('seq').limit(limit).execute();
}

/** Events with afterSeq < seq <= throughSeq, in order, at most `limit`. */
export function eventsBetween(db: Db, afterSeq: number, throughSeq: number, limit: number): Promise<AuditEventRow[]> {
  return db
    .selectFrom('audit_event')
    .selectAll()
    .where('seq', '>', String(afterSeq))
    .where('seq', '<=', String(throughSeq))
    .orderBy('seq')
    .limit(limit)
    .execute();
}

export function newestEvent(db: Db): Promise<AuditEventRow | undefined> {
  return db.selectFrom('audit_event').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
}

export async function countEvents(db: Db): Promise<number> {
  const row = await db
    .selectFrom('audit_event')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export function checkpointsAfter(db: Db, afterSeq: number, limit: number): Promise<AuditCheckpointRow[]> {
  return db.selectFrom('audit_checkpoint').selectAll().where('seq', '>', String(afterSeq)).orderBy('seq').limit(limit).execute();
}

export function newestCheckpoint(db: Db): Promise<AuditCheckpointRow | undefined> {
  return db.selectFrom('audit_checkpoint').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
}

export function checkpointAt(db: Db, seq: number): Promise<AuditCheckpointRow | undefined> {
  return db.selectFrom('audit_checkpoint').selectAll().where('seq', '=', String(seq)).executeTakeFirst();
}

/** Two instances checkpointing the same head at once: the first one's row stands. */
export async function insertCheckpoint(db: Db, row: { seq: number; hash: string; time: Date; kid: string; jws: string }): Promise<boolean> {
  const res = await db
    .insertInto('audit_checkpoint')
    .values(row)
    .onConflict((oc) => oc.column('seq').doNothing())
    .executeTakeFirst();
  return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Public JWKs by kid, retired and erased keys included: old checkpoints still verify. */
export async function publicKeys(db: Db, kids: string[]): Promise<Map<string, { alg: string; jwk: Record<string, unknown> }>> {
  if (kids.length === 0) return new Map();
  const rows = await db.selectFrom('signing_key').select(['kid', 'alg', 'public_jwk']).where('kid', 'in', kids).execute();
  return new Map(rows.map((r) => [r.kid, { alg: r.alg, jwk: r.public_jwk }]));
}

export interface EventFilter {
  action?: string | undefined;
  actor?: string | undefined;
  target?: string | undefined;
  outcome?: AuditOutcome | undefined;
  source?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  beforeSeq?: number | undefined;
  limit: number;
}

/** Newest first; keyset pagination on seq, so page N costs what page 1 does. */
export function queryEvents(db: Db, f: EventFilter): Promise<AuditEventRow[]> {
  let q = db.selectFrom('audit_event').selectAll();
  if (f.action !== undefined) q = q.where('action', '=', f.action);
  if (f.actor !== undefined) q = q.where('actor', '=', f.actor);
  if (f.target !== undefined) q = q.where('target', '=', f.target);
  if (f.outcome !== undefined) q = q.where('outcome', '=', f.outcome);
  if (f.source !== undefined) q = q.where('source', '=', f.source);
  if (f.since !== undefined) q = q.where('time', '>=', f.since);
  if (f.until !== undefined) q = q.where('time', '<', f.until);
  if (f.beforeSeq !== undefined) q = q.where('seq', '<', String(f.beforeSeq));
  return q.orderBy('seq', 'desc').limit(f.limit).execute();
}

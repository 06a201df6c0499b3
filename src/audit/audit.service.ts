// Appending to the audit log (docs/architecture.md, "Audit log": appends are serialized). Every append
// takes one advisory lock, reads the chain head, and inserts rows seq+1… chained to it, all in
// one transaction: two instances can never chain onto the same row, and a failed transaction
// leaves no gap because its seq numbers were never committed.
//
// To record a change and its event atomically, pass the change's transaction:
//   await db.transaction().execute(async (trx) => { await disable(trx, id); await appendAudit(trx, {...}); });
// The append lock is then held until that transaction commits, so append last. The transaction
// must be READ COMMITTED (the default): the head is read after the lock, and an older snapshot
// would not see the rows committed while it waited.
import type { Transaction } from 'kysely';
import type { AuditOutcome, Database } from '../db/schema.ts';
import { inTransaction } from '../db/transaction.ts';
import * as repo from './audit.repository.ts';
import { canonicalJson, eventHash, GENESIS_HASH } from './canonical.ts';
import { validateEvent, type AuditEventFields, type AuditEventInput } from './event.ts';
import type { Db } from '../db/handle.ts';
import { GatehouseError } from '../errors.ts';

/**
 * Events that may wait for the database at once. Past it, an event is refused rather than held:
 * a database that stalls must not turn a flood of requests into unbounded memory (issue 7 §8).
 */
export const AUDIT_QUEUE_MAX_PENDING = 10_000;

export interface AuditEvent {
  seq: number;
  /** ISO 8601, UTC, milliseconds: the database's clock when the event was appended. */
  time: string;
  actor: string;
  ip: string | null;
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  requestId: string | null;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
  /** Ingested events (POST /audit/events): the client that sent it; null for Gatehouse's own. */
  source: string | null;
  /** Ingested events: the producer's UUID (its idempotency key). */
  eventId: string | null;
  /** Ingested events: when the producer says it happened, ISO 8601 UTC. */
  producerTime: string | null;
}

export function toAuditEvent(row: repo.AuditEventRow): AuditEvent {
  return {
    seq: Number(row.seq),
    time: new Date(row.time).toISOString(),
    actor: row.actor,
    ip: row.ip,
    action: row.action,
    target: row.target,
    outcome: row.outcome,
    requestId: row.request_id,
    details: row.details,
    prevHash: row.prev_hash,
    hash: row.hash,
    source: row.source ?? null,
    eventId: row.event_id ?? null,
    producerTime: row.producer_time ? new Date(row.producer_time).toISOString() : null,
  };
}

/** What a group of events got: every event's seq in order (a repeat answers its first seq), and the rows appended now. */
export interface GroupResult {
  seqs: number[];
  appended: AuditEvent[];
}

// What a producer said about an event, for comparing a repeated event_id with its first use.
const said = (e: {
  action: string;
  actor: string;
  target: string | null;
  outcome: string;
  ip: string | null;
  details: Record<string, unknown>;
  producer_time?: string | Date | null;
}) =>
  canonicalJson({
    action: e.action,
    actor: e.actor,
    target: e.target,
    outcome: e.outcome,
    ip: e.ip,
    details: e.details,
    producer_time: e.producer_time ? new Date(e.producer_time).toISOString() : null,
  });

/**
 * Chain already-validated groups of events onto the head, under the lock, in `trx`. Each group is
 * all or nothing: an ingested event whose (source, event_id) was appended before answers that
 * event's seq and is not appended again; the same key with different content refuses its whole
 * group (CONFLICT), and the other groups go on.
 */
async function appendGroupsLocked(trx: Transaction<Database>, groups: AuditEventFields[][]): Promise<Array<GroupResult | GatehouseError>> {
  await repo.lockAppends(trx);
  const head = await repo.chainHead(trx);
  // Keys seen before (stored) or earlier in this transaction: source + event_id → seq and content.
  const known = new Map<string, { seq: number; said: string }>();
  const key = (source: string, eventId: string) => `${source}\u0000${eventId}`;
  const bySource = new Map<string, string[]>();
  for (const e of groups.flat()) {
    if (e.source && e.event_id) bySource.set(e.source, [...(bySource.get(e.source) ?? []), e.event_id]);
  }
  for (const [source, ids] of bySource) {
    for (const row of await repo.eventsByEventId(trx, source, [...new Set(ids)])) {
      known.set(key(source, row.event_id!), { seq: Number(row.seq), said: said(row) });
    }
  }

  let prev = head.hash ?? GENESIS_HASH;
  let nextSeq = head.seq + 1;
  const time = head.now.toISOString();
  const rows: repo.NewAuditEventRow[] = [];
  const results: Array<GroupResult | GatehouseError> = [];
  for (const group of groups) {
    // First pass: a conflicting repeat refuses the group before any of it is chained.
    const local = new Map<string, { index: number; said: string }>();
    let conflict: GatehouseError | null = null;
    group.forEach((e, index) => {
      if (conflict || !e.source || !e.event_id) return;
      const k = key(e.source, e.event_id);
      const first = known.get(k) ?? local.get(k);
      if (!first) local.set(k, { index, said: said(e) });
      else if (first.said !== said(e)) {
        conflict = new GatehouseError(
          'CONFLICT',
          `events[${index}].event_id: ${e.event_id} was ${'seq' in first ? `appended before as event ${first.seq}` : `used by events[${first.index}]`} with different content; an event_id names one event`,
          { index, field: `events[${index}].event_id` },
        );
      }
    });
    if (conflict) {
      results.push(conflict);
      continue;
    }
    const seqs: number[] = [];
    const appended: AuditEvent[] = [];
    for (const e of group) {
      const k = e.source && e.event_id ? key(e.source, e.event_id) : null;
      const first = k ? known.get(k) : undefined;
      if (first) {
        seqs.push(first.seq);
        continue;
      }
      const fields = {
        action: e.action,
        actor: e.actor,
        outcome: e.outcome,
        ip: e.ip,
        target: e.target,
        request_id: e.request_id,
        details: e.details,
        source: e.source ?? null,
        event_id: e.event_id ?? null,
        producer_time: e.producer_time ?? null,
        seq: nextSeq++,
        time,
        prev_hash: prev,
      };
      const hash = eventHash(fields);
      prev = hash;
      rows.push({ ...fields, time: head.now, hash });
      if (k) known.set(k, { seq: fields.seq, said: said(e) });
      seqs.push(fields.seq);
      appended.push({
        seq: fields.seq,
        time,
        actor: fields.actor,
        ip: fields.ip,
        action: fields.action,
        target: fields.target,
        outcome: fields.outcome,
        requestId: fields.request_id,
        details: fields.details,
        prevHash: fields.prev_hash,
        hash,
        source: fields.source,
        eventId: fields.event_id,
        producerTime: fields.producer_time,
      });
    }
    results.push({ seqs, appended });
  }
  if (rows.length) await repo.insertEvents(trx, rows);
  return results;
}

/** Chain already-validated events onto the head, under the lock, in `trx`. */
async function appendValidated(trx: Transaction<Database>, events: AuditEventFields[]): Promise<AuditEvent[]> {
  const [result] = await appendGroupsLocked(trx, [events]);
  if (result instanceof GatehouseError) throw result;
  return result!.appended;
}

/**
 * Append one event. With a Kysely instance it commits on its own; with a transaction it commits
 * (or rolls back) with that transaction. Throws GatehouseError('VALIDATION') before touching the
 * database if the event is malformed or its details look like a secret.
 */
export async function appendAudit(db: Db, event: AuditEventInput): Promise<AuditEvent> {
  const fields = validateEvent(event);
  const [appended] = await inTransaction(db, (trx) => appendValidated(trx, [fields]));
  return appended!;
}

/** Append several events in order, in one transaction: one lock, one insert. All or none. */
export async function appendAuditBatch(db: Db, events: AuditEventInput[]): Promise<AuditEvent[]> {
  if (events.length === 0) return [];
  const fields = events.map(validateEvent);
  return inTransaction(db, (trx) => appendValidated(trx, fields));
}

interface Pending {
  fields: AuditEventFields[];
  resolve(r: GroupResult): void;
  reject(err: unknown): void;
}

/**
 * Group commit for events that stand alone (sign-in failures, rate-limit trips) and for ingested
 * batches (POST /audit/events): while one transaction is in flight, events queue; the next
 * transaction appends all of them under one lock with one insert. No timer, so a lone event
 * waits for nothing. Each promise resolves once its events are committed; a failed transaction
 * rejects every event in it. At most `maxPending` events wait; past that, append rejects with
 * UNAVAILABLE (503) and the request that needed the event fails instead of going unrecorded.
 */
export class AuditQueue {
  readonly #db: Db;
  readonly #maxBatch: number;
  readonly #maxPending: number;
  #pending: Pending[] = [];
  #pendingEvents = 0;
  #draining: Promise<void> | null = null;

  constructor(db: Db, opts: { maxBatch?: number; maxPending?: number } = {}) {
    this.#db = db;
    this.#maxBatch = opts.maxBatch ?? 200;
    this.#maxPending = opts.maxPending ?? AUDIT_QUEUE_MAX_PENDING;
  }

  /** No room for another event: requests that must be audited are refused (503) until it drains. */
  get full(): boolean {
    return this.#pendingEvents >= this.#maxPending;
  }

  append(event: AuditEventInput): Promise<AuditEvent> {
    let fields: AuditEventFields;
    try {
      fields = validateEvent(event);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.appendGroup([fields]).then((r) => r.appended[0]!);
  }

  /**
   * Already-validated events appended together, all or none, in order (src/audit/ingest.ts
   * validates ingested ones). Refused with UNAVAILABLE when the group does not fit in the queue.
   */
  appendGroup(fields: AuditEventFields[]): Promise<GroupResult> {
    if (fields.length === 0) return Promise.resolve({ seqs: [], appended: [] });
    if (this.#pendingEvents + fields.length > this.#maxPending)
      return Promise.reject(new GatehouseError('UNAVAILABLE', 'the audit log is not keeping up; try again shortly'));
    return new Promise((resolve, reject) => {
      this.#pending.push({ fields, resolve, reject });
      this.#pendingEvents += fields.length;
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#draining) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = null;
      // An event queued between the drain's last check and here would otherwise wait forever.
      if (this.#pending.length > 0) this.#kick();
    });
  }

  /** Resolves when every event queued so far is committed (or has failed). */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      // Whole groups, at least one, up to about maxBatch events.
      let take = 0;
      let events = 0;
      while (take < this.#pending.length && (take === 0 || events + this.#pending[take]!.fields.length <= this.#maxBatch)) {
        events += this.#pending[take]!.fields.length;
        take++;
      }
      const batch = this.#pending.splice(0, take);
      // The bound is on events waiting, as before ingestion: a batch in flight no longer counts.
      this.#pendingEvents -= events;
      try {
        const results = await this.#db.transaction().execute((trx) =>
          appendGroupsLocked(
            trx,
            batch.map((p) => p.fields),
          ),
        );
        batch.forEach((p, i) => {
          const r = results[i]!;
          if (r instanceof GatehouseError) p.reject(r);
          else p.resolve(r);
        });
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
  }
}

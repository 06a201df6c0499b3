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
import { eventHash, GENESIS_HASH } from './canonical.ts';
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
  };
}

/** Chain already-validated events onto the head, under the lock, in `trx`. */
async function appendValidated(trx: Transaction<Database>, events: AuditEventFields[]): Promise<AuditEvent[]> {
  await repo.lockAppends(trx);
  const head = await repo.chainHead(trx);
  let prev = head.hash ?? GENESIS_HASH;
  const time = head.now.toISOString();
  const rows: repo.NewAuditEventRow[] = events.map((e, i) => {
    const fields = { ...e, seq: head.seq + 1 + i, time, prev_hash: prev };
    const hash = eventHash(fields);
    prev = hash;
    return { ...fields, time: head.now, hash };
  });
  await repo.insertEvents(trx, rows);
  return rows.map((r) => ({
    seq: r.seq,
    time,
    actor: r.actor,
    ip: r.ip,
    action: r.action,
    target: r.target,
    outcome: r.outcome,
    requestId: r.request_id,
    details: r.details,
    prevHash: r.prev_hash,
    hash: r.hash,
  }));
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
  fields: AuditEventFields;
  resolve(e: AuditEvent): void;
  reject(err: unknown): void;
}

/**
 * Group commit for events that stand alone (sign-in failures, rate-limit trips): while one
 * transaction is in flight, events queue; the next transaction appends all of them under one
 * lock with one insert. No timer, so a lone event waits for nothing. Each promise resolves once
 * its event is committed; a failed transaction rejects every event in it. At most `maxPending`
 * events wait; past that, append rejects with UNAVAILABLE (503) and the request that needed the
 * event fails instead of going unrecorded.
 */
export class AuditQueue {
  readonly #db: Db;
  readonly #maxBatch: number;
  readonly #maxPending: number;
  #pending: Pending[] = [];
  #draining: Promise<void> | null = null;

  constructor(db: Db, opts: { maxBatch?: number; maxPending?: number } = {}) {
    this.#db = db;
    this.#maxBatch = opts.maxBatch ?? 200;
    this.#maxPending = opts.maxPending ?? AUDIT_QUEUE_MAX_PENDING;
  }

  /** No room for another event: requests that must be audited are refused (503) until it drains. */
  get full(): boolean {
    return this.#pending.length >= this.#maxPending;
  }

  append(event: AuditEventInput): Promise<AuditEvent> {
    let fields: AuditEventFields;
    try {
      fields = validateEvent(event);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.full) return Promise.reject(new GatehouseError('UNAVAILABLE', 'the audit log is not keeping up; try again shortly'));
    return new Promise((resolve, reject) => {
      this.#pending.push({ fields, resolve, reject });
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
      const batch = this.#pending.splice(0, this.#maxBatch);
      try {
        const appended = await this.#db.transaction().execute((trx) =>
          appendValidated(
            trx,
            batch.map((p) => p.fields),
          ),
        );
        batch.forEach((p, i) => p.resolve(appended[i]!));
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
  }
}

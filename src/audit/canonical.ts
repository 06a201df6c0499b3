// The bytes an audit row's hash covers. Written so that anyone can recompute the chain from a
// database dump with a few lines of any language (sha256 + a JSON canonicalizer):
//
//   canonical = JCS (RFC 8785) of {seq, time, actor, ip, action, target, outcome, request_id,
//               details, prev_hash}: the row's columns except `hash`, with seq a number, time an
//               ISO 8601 UTC string with milliseconds ("2026-11-26T11:00:00.000Z") and absent
//               values null
//   hash      = lowercase hex SHA-256 of UTF-8(prev_hash ‖ canonical)
//   prev_hash = the previous row's hash; 64 zeros for seq 1
//
// Events ingested from another service (POST /audit/events) add three members to the canonical
// object, and only they do: `source` (the client id), `event_id` (the producer's UUID) and
// `producer_time` (ISO 8601 UTC with milliseconds, like `time`). A row whose source is null (every
// event Gatehouse writes itself, and every row written before ingestion existed) is hashed exactly
// as before, so old chains verify unchanged, and a chain mixing both kinds verifies row by row.
//
// JCS sorts object keys by UTF-16 code units and writes numbers and strings the way ECMAScript's
// JSON.stringify does, which is what this file does. Details are restricted (src/audit/event.ts)
// to values that survive a jsonb round trip unchanged, so the hash of what was written equals the
// hash of what is read back.
import crypto from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedFields {
  seq: number;
  time: string;
  actor: string;
  ip: string | null;
  action: string;
  target: string | null;
  outcome: string;
  request_id: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  /** Ingested events only; null or absent for Gatehouse's own. */
  source?: string | null;
  event_id?: string | null;
  /** A Date as read back from the database, or its ISO string. */
  producer_time?: string | Date | null;
}

/** RFC 8785 JSON Canonicalization Scheme, for the JSON values JSON.parse produces. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('canonical JSON has no representation for a non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    // Default sort compares UTF-16 code units: exactly RFC 8785 §3.2.3.
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  throw new TypeError(`canonical JSON has no representation for ${typeof value}`);
}

/**
 * A stored row as the export writes it (src/audit/export.ts): every column, hash included, seq a
 * number, times ISO 8601 UTC strings with milliseconds, the rest as read. Generic over the
 * columns, so a column added to audit_event is exported (and compared) without a change here;
 * canonicalJson of it is one line of an export file.
 */
export function exportedRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = k === 'seq' ? Number(v) : v instanceof Date || k === 'time' ? new Date(v as Date).toISOString() : v === undefined ? null : v;
  }
  return out;
}

export function eventHash(fields: ChainedFields): string {
  const ingested =
    fields.source === null || fields.source === undefined
      ? {}
      : {
          source: fields.source,
          event_id: fields.event_id ?? null,
          producer_time:
            fields.producer_time === null || fields.producer_time === undefined ? null : new Date(fields.producer_time).toISOString(),
        };
  const canonical = canonicalJson({
    ...ingested,
    seq: fields.seq,
    time: fields.time,
    actor: fields.actor,
    ip: fields.ip,
    action: fields.action,
    target: fields.target,
    outcome: fields.outcome,
    request_id: fields.request_id,
    details: fields.details,
    prev_hash: fields.prev_hash,
  });
  return crypto
    .createHash('sha256')
    .update(fields.prev_hash + canonical, 'utf8')
    .digest('hex');
}

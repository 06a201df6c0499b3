// Events other services append to the audit log through POST /audit/events (docs/architecture.md,
// "Audit ingestion"): the agentserver's config changes, control actions, message injections,
// agent errors and its own authentications (AGENTSERVER-SECURITY.md, "Audit Logging", the "What
// to Log" table, row for row), plus `custom.*` for anything else. This file is the contract: the
// vocabulary, what each action must carry, and the validation of a batch. A batch is all or
// nothing: the first bad event refuses it, named by its index and field.
import net from 'node:net';
import { z } from 'zod';
import { GatehouseError, isGatehouseError, parseOrThrow } from '../errors.ts';
import { AUDIT_OUTCOMES } from './actions.ts';
import { looksLikeCredential, scrubDetails, type AuditEventFields } from './event.ts';

/** Events in one POST /audit/events. */
export const INGEST_BATCH_MAX = 100;
/** Body limit of POST /audit/events: a full batch of events with the largest details fits. */
export const INGEST_MAX_BODY_BYTES = 512 * 1024;

/**
 * The vocabulary. Each action names what it must carry beyond the common fields; `target` is
 * required where the table names one. Row by row, AGENTSERVER-SECURITY.md "What to Log":
 *  - Auth success/failure (user, IP, timestamp, method): `auth.success`, `auth.failure` — actor
 *    the person's sub (or `anonymous`), `ip`, `time`, details.method;
 *  - Config changes (user, before/after hash, timestamp): `config.change` — target the config
 *    section or file, details.before_hash and details.after_hash;
 *  - Control actions (user, action, target, timestamp): `control.pause`, `control.resume`
 *    (an agent), `control.kill` (a thread), `control.reload` (the configuration) — target required;
 *  - Message injection (user, target agent, thread ID): `message.inject` — target the agent,
 *    details.thread_id;
 *  - Agent errors (agent, error type, thread ID): `agent.error` — actor the agent, details.error_type,
 *    details.thread_id (null when the error happened outside a thread).
 * Sign-ins at Gatehouse itself are Gatehouse's own `signin.*` events.
 */
export const INGEST_ACTIONS = {
  'auth.success': { target: false, details: { method: 'string' } },
  'auth.failure': { target: false, details: { method: 'string' } },
  'config.change': { target: true, details: { before_hash: 'hash', after_hash: 'hash' } },
  'control.pause': { target: true, details: {} },
  'control.resume': { target: true, details: {} },
  'control.kill': { target: true, details: {} },
  'control.reload': { target: true, details: {} },
  'message.inject': { target: true, details: { thread_id: 'string' } },
  'agent.error': { target: false, details: { error_type: 'string', thread_id: 'string-or-null' } },
} as const satisfies Record<string, { target: boolean; details: Record<string, 'string' | 'hash' | 'string-or-null'> }>;

export type IngestAction = keyof typeof INGEST_ACTIONS | `custom.${string}`;
export const INGEST_ACTION_NAMES = Object.keys(INGEST_ACTIONS) as (keyof typeof INGEST_ACTIONS)[];

const CUSTOM = /^custom\.[a-z0-9_]{1,32}(?:\.[a-z0-9_]{1,32}){0,3}$/;

export function isIngestAction(action: string): action is IngestAction {
  return Object.hasOwn(INGEST_ACTIONS, action) || CUSTOM.test(action);
}

/** A bounded label for metrics: custom actions are the producer's to invent, so they share one. */
export function ingestActionLabel(action: string): string {
  return Object.hasOwn(INGEST_ACTIONS, action) ? action : 'custom';
}

// A person's sub, a service client, an agent (Gatehouse's agt_… principal, or agent:<name> as the
// agentserver names it; the name follows the permission grammar's id), system, or anonymous (an
// authentication failure naming nobody).
const ACTOR = /^(?:(?:usr|svc|agt)_[A-Za-z0-9_-]{1,64}|agent:[A-Za-z0-9][A-Za-z0-9._-]{0,127}|system|anonymous)$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
// RFC 3339 with an explicit offset: a time without one means a different instant on every host.
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
// A config digest: hex or base64(url), optionally prefixed with its algorithm ("sha256:…").
const HASH = /^(?:[a-z0-9-]{1,16}:)?[A-Za-z0-9+/=_-]{8,128}$/;

const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => s.isWellFormed() && !/\p{Cc}/u.test(s), 'must be printable text')
    .refine((s) => !looksLikeCredential(s), 'looks like a credential; audit events never carry secrets');

const eventSchema = z
  .object({
    event_id: z.string().regex(UUID, 'must be a UUID (the producer’s idempotency key)'),
    time: z
      .string()
      .regex(INSTANT, 'must be an RFC 3339 time with an offset, for example 2026-12-01T17:00:00.000Z')
      .refine((s) => {
        const t = Date.parse(s);
        return Number.isFinite(t) && t >= 0 && t < Date.UTC(10000, 0, 1);
      }, 'is not a valid time'),
    action: z
      .string()
      .max(100)
      .refine(isIngestAction, `must be one of ${INGEST_ACTION_NAMES.join(', ')}, or custom.<name>`),
    actor: z.string().max(140).regex(ACTOR, 'must be a person’s sub (usr_…), svc_…, agt_…, agent:<name>, system or anonymous'),
    target: text(256).nullish(),
    outcome: z.enum(AUDIT_OUTCOMES),
    ip: z
      .string()
      .max(64)
      .refine((s) => net.isIP(s) !== 0, 'must be an IP address')
      .nullish(),
    details: z.unknown().optional(),
  })
  .strict();

const batchSchema = z
  .object({
    events: z
      .array(z.unknown())
      .min(1, 'must hold at least one event')
      .max(INGEST_BATCH_MAX, `must hold at most ${INGEST_BATCH_MAX} events`),
  })
  .strict();

function refuse(index: number, field: string, message: string): never {
  const at = `events[${index}]${field ? `.${field}` : ''}`;
  throw new GatehouseError('VALIDATION', `${at}: ${message}`, { index, field: at });
}

/** One event of a batch, validated and shaped for the chain; throws VALIDATION naming index and field. */
export function validateIngestedEvent(input: unknown, index: number, ctx: { source: string; requestId: string | null }): AuditEventFields {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) refuse(index, '', 'must be a JSON object');
  const parsed = eventSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // An unknown member is named as the field itself: the producer sees which one to drop.
    if (issue.code === 'unrecognized_keys') refuse(index, String(issue.keys[0]), 'is not an event field');
    refuse(index, issue.path.map(String).join('.'), issue.message);
  }
  const e = parsed.data;
  let details: Record<string, unknown>;
  try {
    details = scrubDetails(e.details);
  } catch (err) {
    if (!isGatehouseError(err)) throw err;
    const field = String(err.details?.field ?? 'details');
    refuse(index, field, err.message.replace(/^audit details[^:]*: /, ''));
  }
  const rule = Object.hasOwn(INGEST_ACTIONS, e.action) ? INGEST_ACTIONS[e.action as keyof typeof INGEST_ACTIONS] : null;
  if (rule) {
    if (rule.target && !e.target) refuse(index, 'target', `is required for ${e.action}`);
    for (const [name, shape] of Object.entries(rule.details) as [string, string][]) {
      const v = details[name];
      if (shape === 'string-or-null' && v === null) continue;
      if (typeof v !== 'string' || v.length === 0) refuse(index, `details.${name}`, `is required for ${e.action} (a non-empty string)`);
      if (shape === 'hash' && !HASH.test(v)) refuse(index, `details.${name}`, 'must be a digest, for example sha256:<hex>');
    }
  }
  return {
    action: e.action,
    actor: e.actor,
    outcome: e.outcome,
    ip: e.ip ?? null,
    target: e.target ?? null,
    request_id: ctx.requestId,
    details,
    source: ctx.source,
    event_id: e.event_id.toLowerCase(),
    producer_time: new Date(e.time).toISOString(),
  };
}

/** A whole POST /audit/events body: {"events": [ … ]}, 1 to 100 events, every one valid. */
export function validateIngestBatch(body: unknown, ctx: { source: string; requestId: string | null }): AuditEventFields[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new GatehouseError('VALIDATION', 'the body must be a JSON object {"events": [ … ]}', { field: 'events' });
  const { events } = parseOrThrow(batchSchema, body, { whole: 'events' });
  return events.map((e, i) => validateIngestedEvent(e, i, ctx));
}

/** What a batch got: each event's seq in the order sent, and the events appended now (repeats excluded). */
export interface IngestResult {
  seqs: number[];
  appended: AuditEventFields[];
}

/**
 * Validate a batch from `source` and append it through the queue, all or nothing, in one
 * transaction under the append lock. A repeated event_id answers its first seq; UNAVAILABLE when
 * the queue has no room (503), CONFLICT when an event_id comes back with different content.
 */
export async function ingestBatch(
  queue: { appendGroup(fields: AuditEventFields[]): Promise<{ seqs: number[]; appended: { seq: number }[] }> },
  body: unknown,
  ctx: { source: string; requestId: string | null },
): Promise<IngestResult> {
  const fields = validateIngestBatch(body, ctx);
  const r = await queue.appendGroup(fields);
  const fresh = new Set(r.appended.map((e) => e.seq));
  return { seqs: r.seqs, appended: fields.filter((_, i) => fresh.has(r.seqs[i]!) && r.seqs.indexOf(r.seqs[i]!) === i) };
}

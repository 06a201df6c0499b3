// What may go into an audit row. Two rules: nothing in it is a secret (AGENTSERVER-SECURITY.md,
// "Log Security": logs must not contain secrets), and everything in it reads back from the
// database byte for byte the same, so the chain hash stays recomputable.
import net from 'node:net';
import { z } from 'zod';
import type { AuditOutcome } from '../db/schema.ts';
import { GatehouseError, parseOrThrow } from '../errors.ts';
import { AUDIT_OUTCOMES, type AuditAction } from './actions.ts';

export interface AuditEventInput {
  action: AuditAction;
  /** `usr_…`, `svc_…`, `app_…`, `cli`, `system` or `anonymous`. */
  actor: string;
  outcome: AuditOutcome;
  ip?: string | null;
  target?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

/** An event as validated, ready to chain. */
export interface AuditEventFields {
  action: string;
  actor: string;
  outcome: AuditOutcome;
  ip: string | null;
  target: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
  /** Ingested events only (src/audit/ingest.ts): the sending client, the producer's UUID and time (ISO, UTC, ms). */
  source?: string | null;
  event_id?: string | null;
  producer_time?: string | null;
}

/** Bounds on details: a row stays small, and a caller cannot turn the log into a blob store. */
export const DETAILS_MAX_BYTES = 4096;
const DETAILS_MAX_DEPTH = 4;
const DETAILS_MAX_KEYS = 32;
const DETAILS_MAX_ITEMS = 64;
const DETAILS_MAX_STRING = 1024;

// Words that, as a key or part of one, name a credential. Matching whole words (split at
// separators and camelCase) keeps `kid` or `client_id` usable while `client_secret`,
// `refreshToken` and `backup_codes` are refused.
const SECRET_WORDS = new Set([
  'password',
  'passwd',
  'passphrase',
  'pwd',
  'passcode',
  'secret',
  'secrets',
  'token',
  'tokens',
  'code',
  'codes',
  'seed',
  'otp',
  'totp',
  'hotp',
  'otpauth',
  'pin',
  'cookie',
  'cookies',
  'authorization',
  'bearer',
  'jwt',
  'assertion',
  'private',
]);
const SECRET_COMPOUNDS = /(api|private|master|secret|access|session|encryption|signing)key/;
// Values that are credentials whatever their key: a JWT or JWS, a TOTP provisioning URI, a
// value sealed under the master key (src/crypto/seal.ts), an argon2 hash.
const SECRET_VALUES = [/^eyJ[\w-]*\.[\w-]*\./, /^otpauth:\/\//i, /^v1\.[\w-]{16}\.[\w-]{20,}$/, /^\$argon2/];

/** A value that is a credential whatever its name: a JWT, an otpauth URI, a sealed value, an argon2 hash. */
export function looksLikeCredential(value: string): boolean {
  return SECRET_VALUES.some((re) => re.test(value));
}

function words(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

function isSecretKey(key: string): boolean {
  const w = words(key);
  return w.some((x) => SECRET_WORDS.has(x)) || SECRET_COMPOUNDS.test(w.join(''));
}

function refuse(path: string, message: string): never {
  throw new GatehouseError('VALIDATION', `audit details${path}: ${message}`, { field: `details${path}` });
}

// jsonb cannot hold U+0000, and a lone surrogate does not survive UTF-8: refuse both rather
// than store something that reads back different from what was hashed.
function checkString(path: string, s: string): void {
  if (s.length > DETAILS_MAX_STRING) refuse(path, `longer than ${DETAILS_MAX_STRING} characters`);
  if (!s.isWellFormed() || s.includes('\u0000')) refuse(path, 'is not well-formed text');
}

function clean(value: unknown, path: string, depth: number): unknown {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) refuse(path, 'is not a finite number');
    return value === 0 ? 0 : value; // -0 reads back as 0
  }
  if (typeof value === 'string') {
    checkString(path, value);
    if (SECRET_VALUES.some((re) => re.test(value))) refuse(path, 'looks like a credential; audit details never carry secrets');
    return value;
  }
  if (depth >= DETAILS_MAX_DEPTH) refuse(path, `nested deeper than ${DETAILS_MAX_DEPTH}`);
  if (Array.isArray(value)) {
    if (value.length > DETAILS_MAX_ITEMS) refuse(path, `more than ${DETAILS_MAX_ITEMS} items`);
    return value.map((v, i) => clean(v === undefined ? null : v, `${path}[${i}]`, depth + 1));
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length > DETAILS_MAX_KEYS) refuse(path, `more than ${DETAILS_MAX_KEYS} keys`);
    for (const [key, v] of entries) {
      const at = `${path}.${key}`;
      checkString(at, key);
      if (key === '__proto__' || key.length > 64) refuse(at, 'is not an acceptable key');
      if (isSecretKey(key)) refuse(at, 'is named like a secret; audit details never carry secrets');
      out[key] = clean(v, at, depth + 1);
    }
    return out;
  }
  refuse(path, `is not a JSON value (${value instanceof Date ? 'a Date: pass an ISO string' : typeof value})`);
}

/**
 * A defensive copy of `details` fit for the log, or a VALIDATION error naming the offending
 * key. It refuses rather than redacts: a caller that tries to log a secret has a bug, and
 * silently dropping the field would hide it.
 */
export function scrubDetails(details: unknown): Record<string, unknown> {
  if (details === undefined) return {};
  if (typeof details !== 'object' || details === null || Array.isArray(details)) refuse('', 'must be a JSON object');
  const out = clean(details, '', 0) as Record<string, unknown>;
  if (Buffer.byteLength(JSON.stringify(out), 'utf8') > DETAILS_MAX_BYTES) refuse('', `larger than ${DETAILS_MAX_BYTES} bytes`);
  return out;
}

const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => s.isWellFormed() && !/\p{Cc}/u.test(s), 'must be printable text');

const eventSchema = z
  .object({
    // <domain>.<verb>: the shape of every name in AUDIT_ACTIONS.
    action: z
      .string()
      .max(64)
      .regex(/^[a-z]+(\.[a-z_]+)+$/, 'must look like "domain.verb"'),
    actor: z
      .string()
      .max(80)
      .regex(/^(?:(?:usr|svc|app)_[A-Za-z0-9_-]{1,64}|cli|system|anonymous)$/, 'must be usr_…, svc_…, app_…, cli, system or anonymous'),
    outcome: z.enum(AUDIT_OUTCOMES),
    ip: z
      .string()
      .max(64)
      .refine((s) => net.isIP(s) !== 0, 'must be an IP address')
      .nullish(),
    target: text(256).nullish(),
    requestId: text(128).nullish(),
    details: z.unknown().optional(),
  })
  .strict();

/** Validate an event and scrub its details; throws GatehouseError('VALIDATION'). */
export function validateEvent(input: AuditEventInput): AuditEventFields {
  const e = parseOrThrow(eventSchema, input, { subject: 'audit event', whole: 'event' });
  return {
    action: e.action,
    actor: e.actor,
    outcome: e.outcome,
    ip: e.ip ?? null,
    target: e.target ?? null,
    request_id: e.requestId ?? null,
    details: scrubDetails(e.details),
  };
}

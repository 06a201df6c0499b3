// The one place that reads the environment. It is read and validated once; a bad value fails
// fast with a message naming the variable (docs/architecture.md, "Configuration": the names are a contract).
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, describeZodError } from '../errors.ts';

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const durationSeconds = (name: string, def: number, min: number) =>
  z.coerce
    .number({ error: `${name} must be a whole number of seconds` })
    .int(`${name} must be a whole number of seconds`)
    .min(min, `${name} must be at least ${min}`)
    .default(def);

const schema = z.object({
  PORT: z.coerce
    .number({ error: 'PORT must be a number' })
    .int()
    .min(0, 'PORT must be 0–65535')
    .max(65535, 'PORT must be 0–65535')
    .default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  GATEHOUSE_ISSUER: z.string().optional(),
  DATABASE_URL: z.string().optional(),
  GATEHOUSE_DATA_DIR: z.string().min(1).default('./data'),
  GATEHOUSE_MASTER_KEY: z.string().optional(),
  GATEHOUSE_MASTER_KEY_FILE: z.string().optional(),
  GATEHOUSE_AUDIENCE: z.string().optional(),
  GATEHOUSE_ACCESS_TOKEN_ALG: z.enum(['ES256', 'EdDSA', 'RS256', 'PS256']).default('ES256'),
  GATEHOUSE_KEY_ROTATION_DAYS: z.coerce.number({ error: 'GATEHOUSE_KEY_ROTATION_DAYS must be a number' }).min(0).default(30),
  GATEHOUSE_JWKS_MAX_AGE: durationSeconds('GATEHOUSE_JWKS_MAX_AGE', 300, 0),
  GATEHOUSE_REFRESH_IDLE_TTL: durationSeconds('GATEHOUSE_REFRESH_IDLE_TTL', 14 * 86400, 60),
  GATEHOUSE_REFRESH_ABSOLUTE_TTL: durationSeconds('GATEHOUSE_REFRESH_ABSOLUTE_TTL', 30 * 86400, 60),
  // Sign-in sessions (ASVS V3.3): an idle timeout and an absolute cap. Minimum 1 s so tests can
  // watch a session end; short values only make sessions stricter.
  GATEHOUSE_SESSION_IDLE_TTL: durationSeconds('GATEHOUSE_SESSION_IDLE_TTL', 1800, 1),
  GATEHOUSE_SESSION_MAX_TTL: durationSeconds('GATEHOUSE_SESSION_MAX_TTL', 12 * 3600, 1),
  // The window of the per-address sign-in failure limit (5 failures in it): stricter when longer;
  // shorter only for tests that must see a window pass (src/signin/brute-force.ts).
  GATEHOUSE_SIGNIN_IP_WINDOW: durationSeconds('GATEHOUSE_SIGNIN_IP_WINDOW', 60, 1).pipe(
    z.number().max(86400, 'GATEHOUSE_SIGNIN_IP_WINDOW must be at most 86400'),
  ),
  // After SIGTERM, /readyz answers 503 this long while every request is still served, so that
  // load balancers' health checks notice before the listener closes.
  GATEHOUSE_DRAIN_SECONDS: durationSeconds('GATEHOUSE_DRAIN_SECONDS', 5, 0).refine(
    (v) => v <= 300,
    'GATEHOUSE_DRAIN_SECONDS must be at most 300',
  ),
  GATEHOUSE_TRUST_PROXY: z.enum(['true', 'false', '1', '0', '']).default('false'),
  GATEHOUSE_TLS_CERT_FILE: z.string().optional(),
  GATEHOUSE_TLS_KEY_FILE: z.string().optional(),
  GATEHOUSE_TLS_CA_FILE: z.string().optional(),
  // A bearer secret for /metrics: long and random, or not at all (then /metrics answers loopback only).
  GATEHOUSE_METRICS_TOKEN: z
    .string()
    .optional()
    .refine(
      (v) => !v || (v.length >= 32 && /^[\x21-\x7e]+$/.test(v)),
      'GATEHOUSE_METRICS_TOKEN must be at least 32 printable characters without spaces',
    ),
  GATEHOUSE_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1 << 20)
    .default(16 * 1024),
  // Where every checkpoint writes the events since the previous one and a signed digest
  // (src/audit/export.ts). Unset: no export.
  GATEHOUSE_AUDIT_EXPORT_DIR: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === '' || !/[\0\n\r]/.test(v), 'GATEHOUSE_AUDIT_EXPORT_DIR must be a directory path'),
  // Events a minute each client may append through POST /audit/events (over it: 429 + Retry-After).
  GATEHOUSE_AUDIT_INGEST_LIMIT: z.coerce
    .number({ error: 'GATEHOUSE_AUDIT_INGEST_LIMIT must be a whole number of events a minute' })
    .int('GATEHOUSE_AUDIT_INGEST_LIMIT must be a whole number of events a minute')
    .min(1, 'GATEHOUSE_AUDIT_INGEST_LIMIT must be at least 1')
    .max(10_000_000, 'GATEHOUSE_AUDIT_INGEST_LIMIT must be at most 10000000')
    .default(60_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface Config {
  port: number;
  host: string;
  issuer: string;
  audience: string;
  databaseUrl: string | null;
  dataDir: string;
  masterKey: string | null;
  masterKeyFile: string | null;
  accessTokenAlg: 'ES256' | 'EdDSA' | 'RS256' | 'PS256';
  keyRotationSeconds: number;
  jwksMaxAgeSeconds: number;
  refreshIdleTtl: number;
  refreshAbsoluteTtl: number;
  /** A sign-in session ends this long after the last authorization request or refresh. */
  sessionIdleTtl: number;
  /** …and at the latest this long after the sign-in, whatever the activity. */
  sessionMaxTtl: number;
  /** Seconds of the per-address window of sign-in failures. */
  signinIpWindow: number;
  /** Seconds between SIGTERM and closing the listener, with /readyz answering 503. */
  drainSeconds: number;
  trustProxy: boolean;
  tls: { certFile: string; keyFile: string; caFile: string | null } | null;
  maxBodyBytes: number;
  /** Bearer token that opens /metrics; null: /metrics answers direct loopback clients only. */
  metricsToken: string | null;
  /** Absolute path of the audit export directory; null: checkpoints are not exported. */
  auditExportDir: string | null;
  /** Events a minute per client at POST /audit/events. */
  auditIngestLimit: number;
  logLevel: string;
}

function checkUrl(name: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} must be an absolute URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOCAL_HOSTS.has(url.hostname))) {
    throw new ConfigError(`${name} must use https (http is allowed only for localhost)`);
  }
  if (url.search || url.hash) throw new ConfigError(`${name} must not have a query or fragment`);
  return url;
}

/** Validate an environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(describeZodError(parsed.error).message);
  }
  const e = parsed.data;
  const issuer = (e.GATEHOUSE_ISSUER || `http://localhost:${e.PORT}`).replace(/\/$/, '');
  checkUrl('GATEHOUSE_ISSUER', issuer);
  const audience = e.GATEHOUSE_AUDIENCE || issuer;
  checkUrl('GATEHOUSE_AUDIENCE', audience);
  if (e.DATABASE_URL && !/^postgres(ql)?:\/\//.test(e.DATABASE_URL)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// URL');
  }
  if (e.GATEHOUSE_MASTER_KEY && e.GATEHOUSE_MASTER_KEY_FILE) {
    throw new ConfigError('GATEHOUSE_MASTER_KEY and GATEHOUSE_MASTER_KEY_FILE: set one, not both');
  }
  if (!!e.GATEHOUSE_TLS_CERT_FILE !== !!e.GATEHOUSE_TLS_KEY_FILE) {
    throw new ConfigError('GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE go together');
  }
  if (e.GATEHOUSE_REFRESH_ABSOLUTE_TTL < e.GATEHOUSE_REFRESH_IDLE_TTL) {
    throw new ConfigError('GATEHOUSE_REFRESH_ABSOLUTE_TTL must not be shorter than GATEHOUSE_REFRESH_IDLE_TTL');
  }
  if (e.GATEHOUSE_SESSION_MAX_TTL < e.GATEHOUSE_SESSION_IDLE_TTL) {
    throw new ConfigError('GATEHOUSE_SESSION_MAX_TTL must not be shorter than GATEHOUSE_SESSION_IDLE_TTL');
  }
  return {
    port: e.PORT,
    host: e.HOST,
    issuer,
    audience,
    databaseUrl: e.DATABASE_URL || null,
    dataDir: path.resolve(e.GATEHOUSE_DATA_DIR),
    masterKey: e.GATEHOUSE_MASTER_KEY || null,
    masterKeyFile: e.GATEHOUSE_MASTER_KEY_FILE || null,
    accessTokenAlg: e.GATEHOUSE_ACCESS_TOKEN_ALG,
    keyRotationSeconds: Math.round(e.GATEHOUSE_KEY_ROTATION_DAYS * 86400),
    jwksMaxAgeSeconds: e.GATEHOUSE_JWKS_MAX_AGE,
    refreshIdleTtl: e.GATEHOUSE_REFRESH_IDLE_TTL,
    refreshAbsoluteTtl: e.GATEHOUSE_REFRESH_ABSOLUTE_TTL,
    sessionIdleTtl: e.GATEHOUSE_SESSION_IDLE_TTL,
    sessionMaxTtl: e.GATEHOUSE_SESSION_MAX_TTL,
    signinIpWindow: e.GATEHOUSE_SIGNIN_IP_WINDOW,
    drainSeconds: e.GATEHOUSE_DRAIN_SECONDS,
    trustProxy: e.GATEHOUSE_TRUST_PROXY === 'true' || e.GATEHOUSE_TRUST_PROXY === '1',
    tls: e.GATEHOUSE_TLS_CERT_FILE
      ? { certFile: e.GATEHOUSE_TLS_CERT_FILE, keyFile: e.GATEHOUSE_TLS_KEY_FILE!, caFile: e.GATEHOUSE_TLS_CA_FILE || null }
      : null,
    maxBodyBytes: e.GATEHOUSE_MAX_BODY_BYTES,
    metricsToken: e.GATEHOUSE_METRICS_TOKEN || null,
    auditExportDir: e.GATEHOUSE_AUDIT_EXPORT_DIR ? path.resolve(e.GATEHOUSE_AUDIT_EXPORT_DIR) : null,
    auditIngestLimit: e.GATEHOUSE_AUDIT_INGEST_LIMIT,
    logLevel: e.LOG_LEVEL,
  };
}

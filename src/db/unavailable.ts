// The one place that decides whether an error means "the database is out of reach right now"
// (docs/architecture.md, "Database outages"). Such a request is answered 503 with Retry-After
// and OAuth `temporarily_unavailable` (RFC 6749 section 4.1.2.1), never 500: the caller did
// nothing wrong and the same request will work once PostgreSQL is back.
import { GatehouseError } from '../errors.ts';

/** What Retry-After says: a few seconds, about what a PostgreSQL restart or failover takes. */
export const RETRY_AFTER_SECONDS = 5;

// Socket-level failures reaching the server (Node's system error codes).
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

// PostgreSQL SQLSTATEs (Appendix A): class 08 is "connection exception"; 57P01–57P03 are
// admin_shutdown, crash_shutdown and cannot_connect_now (starting up, shutting down, in recovery);
// 53300 too_many_connections; 57014 query_canceled, raised by statement_timeout.
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);

// node-postgres and pg-pool raise plain Errors for these, without a code.
const DRIVER_MESSAGES = [
  /^Connection terminated/, // the server closed the socket (restart, failover, idle kill)
  /^timeout exceeded when trying to connect$/, // pg-pool: connectionTimeoutMillis
  /^Query read timeout$/, // pg: query_timeout
  /^Client has encountered a connection error and is not queryable$/,
  /^Client was closed and is not queryable$/,
];

function matches(err: unknown, depth: number): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || SQLSTATES.has(e.code) || e.code.startsWith('08'))) return true;
  if (typeof e.message === 'string' && DRIVER_MESSAGES.some((m) => m.test(e.message as string))) return true;
  // Node reports a failed happy-eyeballs connect as an AggregateError of the attempts.
  if (Array.isArray(e.errors) && e.errors.some((x) => matches(x, depth + 1))) return true;
  return matches(e.cause, depth + 1);
}

/** True when `err` says the database could not be reached or dropped the connection. */
export function isDatabaseUnavailable(err: unknown): boolean {
  return matches(err, 0);
}

/** The GatehouseError a request sees for a database outage; any other error unchanged. */
export function asUnavailable(err: unknown): unknown {
  return isDatabaseUnavailable(err) ? databaseUnavailable() : err;
}

export function databaseUnavailable(): GatehouseError {
  return new GatehouseError('UNAVAILABLE', 'The service is temporarily unavailable. Try again shortly.');
}

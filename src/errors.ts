// Errors from one place. An error whose message is written to be read carries `expose: true`
// (the flag http-errors and oidc-provider use); anything else is a bug, and whoever sees it is
// told only "internal error" while the log keeps the detail. Two families carry the flag:
//
// - GatehouseError: the request was refused (bad input, no permission, a conflict). Domain code
//   throws it with a code from ERROR_STATUS; the HTTP edge answers with that status, the code's
//   OAuth error (RFC 6749 section 5.2) and the message; the CLI prints the message and exits 2.
// - EnvironmentError: the server's own surroundings failed (configuration, database, data
//   directory, master key). Its message is for the operator at the console (the CLI exits 1, the
//   server refuses to start); a remote caller who meets one mid-request sees a bare 500.
//
// A message never carries a secret or a stack.
import type { ZodError, ZodType } from 'zod';

export const ERROR_STATUS = {
  VALIDATION: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  FORBIDDEN: 403,
  UNAUTHENTICATED: 401,
  RATE_LIMITED: 429,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  KEY_ROTATION_TOO_SOON: 409,
  LAST_OWNER: 409,
  DATA_DIR_IN_USE: 409,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * The `error` value of a JSON error body: the OAuth error code where one applies (RFC 6749
 * section 5.2, RFC 6750 section 3.1, OpenID Connect Core 3.1.2.6), the lower-cased code otherwise.
 */
export const OAUTH_ERROR: Record<ErrorCode, string> = {
  VALIDATION: 'invalid_request',
  NOT_FOUND: 'not_found',
  CONFLICT: 'conflict',
  FORBIDDEN: 'access_denied',
  UNAUTHENTICATED: 'login_required',
  RATE_LIMITED: 'rate_limited',
  PAYLOAD_TOO_LARGE: 'invalid_request',
  UNSUPPORTED_MEDIA_TYPE: 'invalid_request',
  KEY_ROTATION_TOO_SOON: 'key_rotation_too_soon',
  LAST_OWNER: 'last_owner',
  DATA_DIR_IN_USE: 'data_dir_in_use',
  UNAVAILABLE: 'temporarily_unavailable',
};

export class GatehouseError extends Error {
  override name = 'GatehouseError';
  readonly expose = true;
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields safe to show (for example the field that failed validation). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = details;
  }
}

/** The server's environment failed; the message tells the operator what to fix. */
export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
  readonly expose = true;
}

/** A bad environment variable or configuration file. The server exits 2 on it. */
export class ConfigError extends EnvironmentError {
  override name = 'ConfigError';
}

/** A sealed value does not open: the wrong master key, or altered data. */
export class SealError extends EnvironmentError {
  override name = 'SealError';
}

/** Another process holds the embedded database's data directory. */
export class DataDirInUseError extends EnvironmentError {
  override name = 'DataDirInUseError';
}

export class DatabaseUnavailableError extends EnvironmentError {
  override name = 'DatabaseUnavailableError';
}

export class MigrationError extends EnvironmentError {
  override name = 'MigrationError';
}

/**
 * Writing the audit export (GATEHOUSE_AUDIT_EXPORT_DIR) failed: the directory is unwritable, a
 * file of the same name holds other bytes, or the database no longer chains onto the last digest.
 * The checkpoint itself is recorded; the export is retried at the next one.
 */
export class AuditExportError extends EnvironmentError {
  override name = 'AuditExportError';
}

export function isGatehouseError(err: unknown): err is GatehouseError {
  return err instanceof GatehouseError;
}

/**
 * A client error raised by a library at the HTTP edge becomes a GatehouseError with the same
 * meaning, so it is answered as the refusal it is and not as an internal error: http-errors as
 * Koa's `ctx.throw` raises them (a 4xx `status`, `expose: true`), and the body parser's (co-body,
 * raw-body: a 4xx `status`, sometimes without `expose`; JSON that does not parse or holds a
 * `__proto__` key is a SyntaxError that also carries the raw body, which is never shown or logged).
 */
export function fromHttpClientError(err: unknown): unknown {
  if (!(err instanceof Error) || isGatehouseError(err)) return err;
  const { status, expose, body } = err as { status?: unknown; expose?: unknown; body?: unknown };
  if (typeof status !== 'number' || status < 400 || status > 499) return err;
  if (status === 413) return new GatehouseError('PAYLOAD_TOO_LARGE', 'request body too large');
  if (status === 415) return new GatehouseError('UNSUPPORTED_MEDIA_TYPE', 'unsupported request body encoding or content type');
  if (err instanceof SyntaxError)
    return new GatehouseError('VALIDATION', 'request body is not valid JSON (an object or an array, no __proto__ keys)');
  if (expose === true && body === undefined && err.message.length > 0 && err.message.length <= 200)
    return new GatehouseError('VALIDATION', err.message);
  if (expose === true || typeof (err as { type?: unknown }).type === 'string') return new GatehouseError('VALIDATION', 'malformed request');
  return err;
}

/** True for an error whose message was written to be shown. */
export function isExposed(err: unknown): err is Error & { expose: true } {
  return err instanceof Error && (err as { expose?: unknown }).expose === true;
}

/** The message a remote caller may see for any thrown value. */
export function publicMessage(err: unknown): string {
  return isGatehouseError(err) ? err.message : 'internal error';
}

export interface ZodFieldOptions {
  /** Prefixes the path: the name of the argument being checked. */
  field?: string;
  /** Prefixes the message, for example "audit query". */
  subject?: string;
  /** The field named when the input as a whole is wrong. */
  whole?: string;
}

/** The first zod issue as the field it concerns and a message naming that field. */
export function describeZodError(error: ZodError, opts: ZodFieldOptions = {}): { field: string; message: string } {
  const issue = error.issues[0]!;
  const field = [...(opts.field ? [opts.field] : []), ...issue.path.map(String)].join('.') || opts.whole || 'input';
  return { field, message: `${opts.subject ? `${opts.subject} ` : ''}${field}: ${issue.message}` };
}

/** A zod failure as GatehouseError VALIDATION naming the first bad field. */
export function validationError(error: ZodError, opts: ZodFieldOptions = {}): GatehouseError {
  const { field, message } = describeZodError(error, opts);
  return new GatehouseError('VALIDATION', message, { field });
}

/** Parse with a zod schema or throw validationError; a string names the field (`opts.field`). */
export function parseOrThrow<T>(schema: ZodType<T>, value: unknown, opts: ZodFieldOptions | string = {}): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(parsed.error, typeof opts === 'string' ? { field: opts } : opts);
  return parsed.data;
}

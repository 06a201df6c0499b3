// Errors from one place. Domain code throws GatehouseError with a code from this map; the HTTP
// edge and the CLI turn it into a status and a message. A message here is written to be shown:
// it never carries a secret, a stack or a database detail. Anything that is not a
// GatehouseError is reported to the caller as a bare "internal error".

export const ERROR_STATUS = {
  VALIDATION: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  FORBIDDEN: 403,
  UNAUTHENTICATED: 401,
  RATE_LIMITED: 429,
  PAYLOAD_TOO_LARGE: 413,
  KEY_ROTATION_TOO_SOON: 409,
  LAST_OWNER: 409,
  DATA_DIR_IN_USE: 409,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class GatehouseError extends Error {
  override name = 'GatehouseError';
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

export function isGatehouseError(err: unknown): err is GatehouseError {
  return err instanceof GatehouseError;
}

/** The message a caller may see for any thrown value. */
export function publicMessage(err: unknown): string {
  return isGatehouseError(err) ? err.message : 'internal error';
}

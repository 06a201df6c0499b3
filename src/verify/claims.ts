import { can as modelCan, hasRole as modelHasRole, isPermission, type Role } from '../authz/model.ts';
import { VerifyError } from './errors.ts';
import { parseAct, type ActorClaim } from './delegation.ts';

/** The claims of a Gatehouse access token (docs/architecture.md, "Tokens and claims"; RFC 9068 §2.2). */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  /** RFC 9068 §2.2.3.1 (the SCIM name); [] when absent. */
  roles: string[];
  /** `<kind>:<id>:<action>` grants; [] when absent. */
  permissions: string[];
  auth_time?: number;
  acr?: string;
  /** RFC 8176 values. */
  amr?: string[];
  sid?: string;
  /** A delegated token (RFC 8693 §4.1): the agent acting for `sub` now, earlier actors nested (./delegation.ts). */
  act?: ActorClaim;
  /** Sender constraint (RFC 7800): `jkt` for DPoP (RFC 9449), `x5t#S256` for a client certificate (RFC 8705). */
  cnf?: Confirmation;
}

export interface Confirmation {
  jkt?: string;
  'x5t#S256'?: string;
  [method: string]: unknown;
}

// A signature proves who wrote the token, not that they wrote it well: every claim the
// agentserver will branch on is shape-checked here, so a bad issuer release fails closed.
function bad(claim: string, shape: string): never {
  throw new VerifyError('malformed', `the "${claim}" claim must be ${shape}`);
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isNumericDate = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

const isThumbprint = (v: unknown) => v === undefined || (typeof v === 'string' && /^[A-Za-z0-9_-]{43}$/.test(v));
const isConfirmation = (v: unknown): v is Confirmation =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  isThumbprint((v as Confirmation).jkt) &&
  isThumbprint((v as Confirmation)['x5t#S256']);

function requiredString(payload: Record<string, unknown>, claim: string): string {
  const v = payload[claim];
  return isString(v) ? v : bad(claim, 'a non-empty string');
}

function optional<T>(payload: Record<string, unknown>, claim: string, ok: (v: unknown) => v is T, shape: string): T | undefined {
  const v = payload[claim];
  if (v === undefined) return undefined;
  return ok(v) ? v : bad(claim, shape);
}

/** Build typed claims from a payload whose signature, iss, aud, exp and typ jose has checked. */
export function parseClaims(payload: Record<string, unknown>): AccessTokenClaims {
  const aud = payload.aud;
  if (!isString(aud) && !(isStringArray(aud) && aud.length > 0)) bad('aud', 'a string or an array of strings');
  const exp = payload.exp;
  const iat = payload.iat;
  if (!isNumericDate(exp)) bad('exp', 'a NumericDate');
  if (!isNumericDate(iat)) bad('iat', 'a NumericDate');

  // Unknown role names are kept (they grant nothing in the model), so an issuer may add a role
  // before every verifier knows it; a permission the model cannot parse is refused outright.
  const roles = optional(payload, 'roles', isStringArray, 'an array of strings') ?? [];
  const permissions = optional(payload, 'permissions', isStringArray, 'an array of strings') ?? [];
  if (!permissions.every(isPermission)) bad('permissions', 'an array of <kind>:<id>:<action> grants');

  const claims: AccessTokenClaims = {
    iss: requiredString(payload, 'iss'),
    sub: requiredString(payload, 'sub'),
    aud,
    exp,
    iat,
    jti: requiredString(payload, 'jti'),
    client_id: requiredString(payload, 'client_id'),
    roles: [...roles],
    permissions: [...permissions],
  };
  const scope = optional(payload, 'scope', (v): v is string => typeof v === 'string', 'a string');
  const authTime = optional(payload, 'auth_time', isNumericDate, 'a NumericDate');
  const acr = optional(payload, 'acr', isString, 'a non-empty string');
  const amr = optional(payload, 'amr', isStringArray, 'an array of strings');
  const sid = optional(payload, 'sid', isString, 'a non-empty string');
  if (scope !== undefined) claims.scope = scope;
  if (authTime !== undefined) claims.auth_time = authTime;
  if (acr !== undefined) claims.acr = acr;
  if (amr !== undefined) claims.amr = [...amr];
  if (sid !== undefined) claims.sid = sid;
  const cnf = optional(payload, 'cnf', isConfirmation, 'an object whose jkt and x5t#S256 are SHA-256 thumbprints');
  if (cnf !== undefined) claims.cnf = { ...cnf };
  const act = parseAct(payload.act);
  if (act !== undefined) claims.act = act;
  return claims;
}

/** Does the token's holder have `role`, following viewer < operator < admin < owner? */
export function hasRole(claims: Pick<AccessTokenClaims, 'roles'>, role: Role): boolean {
  return modelHasRole(claims.roles, role);
}

/** May the token's holder do `permission` (e.g. `agent:summarizer:inject`)? Default deny. */
export function can(claims: Pick<AccessTokenClaims, 'roles' | 'permissions'>, permission: string): boolean {
  return modelCan(claims, permission);
}

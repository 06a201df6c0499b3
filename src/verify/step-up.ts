import type { AccessTokenClaims } from './claims.ts';
import { DEFAULT_DPOP_ALGORITHMS } from './dpop.ts';

/** Password plus a second factor (TOTP, backup code, or a passkey used as second factor). */
export const ACR_MFA = 'urn:gatehouse:acr:mfa';
/** Phishing-resistant: a passkey with user verification (NIST SP 800-63B §5.2.5). */
export const ACR_PHR = 'urn:gatehouse:acr:phr';
/**
 * What "multi-factor" should usually mean to a resource server: phr is stronger than mfa, and
 * RFC 9470 compares acr by equality, so asking for [ACR_MFA] alone would refuse passkey users.
 */
export const ACR_MFA_OR_STRONGER: readonly string[] = [ACR_MFA, ACR_PHR];

export interface StepUpRequirement {
  /** Acceptable `acr` values; the token's acr must be one of them. */
  acrValues?: readonly string[];
  /** Seconds since `auth_time` after which the person must authenticate again. */
  maxAge?: number;
}

export interface StepUpChallengeOptions extends StepUpRequirement {
  realm?: string;
  /** Defaults to RFC 9470's example texts. */
  description?: string;
  /**
   * `DPoP` for a DPoP-bound token (RFC 9449 §7.1: the challenge names the scheme the token is
   * used with, and lists the proof algorithms in `algs`). Default `Bearer`.
   */
  scheme?: 'Bearer' | 'DPoP';
  /** DPoP scheme only: the proof algorithms accepted. Default DEFAULT_DPOP_ALGORITHMS. */
  dpopAlgorithms?: readonly string[];
}

// RFC 9110 §5.6.4 quoted-string. CR/LF (header injection) and other controls are refused
// rather than escaped: these values come from configuration, so a bad one is a bug.
function quoted(name: string, value: string): string {
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new TypeError(`${name} must not contain control characters`);
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * The `WWW-Authenticate` value for a token whose authentication is too weak or too old
 * (RFC 9470 §3), to be sent with status 401.
 */
export function stepUpChallenge(options: StepUpChallengeOptions = {}): string {
  const { acrValues, maxAge, realm } = options;
  const scheme = options.scheme ?? 'Bearer';
  if (scheme !== 'Bearer' && scheme !== 'DPoP') throw new TypeError('scheme must be Bearer or DPoP');
  const params: string[] = [];
  if (realm !== undefined) params.push(`realm=${quoted('realm', realm)}`);
  if (scheme === 'DPoP') {
    const algs = options.dpopAlgorithms ?? DEFAULT_DPOP_ALGORITHMS;
    if (algs.length === 0 || algs.some((a) => !/^[A-Za-z0-9_-]+$/.test(a))) throw new TypeError('dpopAlgorithms must be algorithm names');
    params.push(`algs="${algs.join(' ')}"`);
  }
  params.push('error="insufficient_user_authentication"');
  const description =
    options.description ?? (acrValues?.length ? 'A different authentication level is required' : 'More recent authentication is required');
  params.push(`error_description=${quoted('description', description)}`);
  if (acrValues?.length) {
    // RFC 9470 §3: a space-separated list, so a value may not contain a space itself.
    if (acrValues.some((v) => v === '' || /\s/.test(v))) throw new TypeError('acr values must be non-empty and contain no spaces');
    params.push(`acr_values=${quoted('acr_values', acrValues.join(' '))}`);
  }
  if (maxAge !== undefined) {
    if (!Number.isInteger(maxAge) || maxAge < 0) throw new TypeError('maxAge must be a non-negative integer');
    params.push(`max_age="${maxAge}"`);
  }
  return `${scheme} ${params.join(', ')}`;
}

export type AuthenticationCheck = { ok: true } | { ok: false; reason: 'acr' | 'max_age'; challenge: string };

/**
 * Is the authentication behind this token strong and recent enough? `now` is in seconds since
 * the epoch (the unit of `auth_time`). On failure, `challenge` is the RFC 9470 header value,
 * restating the whole requirement so the client can meet it in one new authorization request;
 * its scheme is `DPoP` when the token is DPoP-bound (`cnf.jkt`), `Bearer` otherwise.
 */
export function checkAuthentication(
  claims: Pick<AccessTokenClaims, 'acr' | 'auth_time' | 'cnf'>,
  requirement: StepUpRequirement & { now?: number; realm?: string; dpopAlgorithms?: readonly string[] },
): AuthenticationCheck {
  const { acrValues, maxAge, realm, dpopAlgorithms } = requirement;
  const now = requirement.now ?? Math.floor(Date.now() / 1000);
  const scheme = typeof claims.cnf?.jkt === 'string' ? 'DPoP' : 'Bearer';
  const challenge = (description: string) => stepUpChallenge({ acrValues, maxAge, realm, description, scheme, dpopAlgorithms });

  // Service tokens carry no acr: they never satisfy an acr requirement (docs/architecture.md, "Tokens and claims").
  if (acrValues?.length && (claims.acr === undefined || !acrValues.includes(claims.acr))) {
    return { ok: false, reason: 'acr', challenge: challenge('A different authentication level is required') };
  }
  // No auth_time means the age is unknown, which cannot satisfy a max_age (OIDC Core §2).
  if (maxAge !== undefined && (claims.auth_time === undefined || now - claims.auth_time > maxAge)) {
    return { ok: false, reason: 'max_age', challenge: challenge('More recent authentication is required') };
  }
  return { ok: true };
}

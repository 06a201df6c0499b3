import { errors } from 'jose';

/**
 * Why a token was refused. Stable: the agentserver may log, count or branch on these. Every one
 * of them means "401 with `WWW-Authenticate: Bearer error="invalid_token"`" (RFC 6750 §3.1)
 * except `jwks_unavailable`, `introspection_unavailable` and `replay_cache_full`, which are the verifier's own
 * trouble (503, not the caller's fault). For a DPoP-bound token (`cnf.jkt`) the challenge scheme
 * is `DPoP` (RFC 9449 §7.1): `invalid_dpop_proof` and `use_dpop_nonce` are the error values to send as they are.
 */
export const VERIFY_ERROR_CODES = [
  'malformed', // not a compact JWS, bad JSON, a required claim missing or of the wrong shape
  'wrong_type', // header typ is not at+jwt (RFC 9068 §4: an ID token or other JWT must not pass)
  'wrong_algorithm', // alg outside the allow-list: none, HS* (key confusion), anything unexpected
  'unknown_key', // no key in the JWKS has the token's kid, even after a refetch
  'invalid_signature',
  'wrong_issuer',
  'wrong_audience', // RFC 9068 §4 / RFC 8707: the token was issued for another resource
  'expired',
  'not_yet_valid', // nbf in the future
  'jwks_unavailable', // the JWKS could not be fetched or is not a usable key set
  'inactive', // { online: true }: Gatehouse says the token is no longer active (grant revoked, person disabled, key withdrawn)
  'introspection_unavailable', // { online: true }: Gatehouse could not be asked (503, like jwks_unavailable)
  // Sender-constrained tokens (src/verify/dpop.ts, src/verify/mtls.ts). A bound token is never accepted as a bearer token.
  'dpop_proof_required', // cnf.jkt, and no { dpop } proof was given
  'invalid_dpop_proof', // the proof is malformed, or for another method, URL or token (ath), too old, or its signature fails
  'use_dpop_nonce', // the proof lacks the nonce this resource server provided (RFC 9449 §9)
  'dpop_key_mismatch', // the proof's key is not the one in cnf.jkt, or a proof came with a token not DPoP-bound
  'dpop_replay', // the proof's jti was seen already within its lifetime
  'replay_cache_full', // too many live jtis to remember: refused rather than risk a replay (503)
  'certificate_required', // cnf.x5t#S256, and no { certificate } was given
  'certificate_mismatch', // the certificate is not the one in cnf.x5t#S256 (or could not be read)
  'unsupported_confirmation', // cnf holds no confirmation method this verifier can check
  'delegated_token', // { allowDelegated: false }: an agent acting for the person (`act`) where only the person may act (403)
  'actor_token', // an agent's own actor token (client_id agt_…, no `act`): it proves an identity in a token exchange, it grants nothing
  'replayed', // verifyLogoutToken: a logout token whose jti was already accepted (Back-Channel Logout 1.0 §2.6)
] as const;

export type VerifyErrorCode = (typeof VERIFY_ERROR_CODES)[number];

/** A refused token. The message names the failed check and never contains the token. */
export class VerifyError extends Error {
  override name = 'VerifyError';
  readonly code: VerifyErrorCode;

  constructor(code: VerifyErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

// jose's messages are fixed strings about the check ("signature verification failed"), never
// the token; but its claim errors carry the decoded payload, so that is not kept as `cause`.
function claimCode(claim: string, reason: string): VerifyErrorCode {
  if (reason === 'missing' || reason === 'invalid') return 'malformed';
  switch (claim) {
    case 'typ':
      return 'wrong_type';
    case 'iss':
      return 'wrong_issuer';
    case 'aud':
      return 'wrong_audience';
    case 'nbf':
      return 'not_yet_valid';
    default:
      return 'malformed';
  }
}

/** Translate whatever jwtVerify threw into a VerifyError. */
export function toVerifyError(err: unknown): VerifyError {
  if (err instanceof VerifyError) return err;
  if (err instanceof errors.JWTExpired) return new VerifyError('expired', 'the token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    return new VerifyError(claimCode(err.claim, err.reason), `claim check failed: ${err.message}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new VerifyError('wrong_algorithm', 'the token algorithm is not allowed');
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return new VerifyError('unknown_key', 'no key in the JWKS matches the token kid and alg');
  }
  if (err instanceof errors.JWKSMultipleMatchingKeys) {
    // Only possible without a kid: Gatehouse always sets one, so refuse rather than try each key.
    return new VerifyError('unknown_key', 'the token has no kid and several JWKS keys could match');
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new VerifyError('invalid_signature', 'signature verification failed');
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return new VerifyError('malformed', `the token is malformed: ${err.message}`);
  }
  // A key in the JWKS that does not import (wrong kty/crv for the alg, private material...).
  if (err instanceof errors.JWKInvalid || err instanceof errors.JWKSInvalid) {
    return new VerifyError('jwks_unavailable', 'the JWKS key is not usable', { cause: err });
  }
  return new VerifyError('malformed', 'the token could not be verified', { cause: err });
}

// Which proof a token needs (RFC 7800 `cnf`), and the refusal when it is missing: a bound token
// is never accepted as a bearer token, and a proof never makes an unbound token acceptable.
import type { AccessTokenClaims } from './claims.ts';
import type { DpopCheck, DpopProofInput } from './dpop.ts';
import { VerifyError } from './errors.ts';
import { checkCertificateBinding, type CertificateInput } from './mtls.ts';

export async function checkSenderConstraint(
  token: string,
  claims: AccessTokenClaims,
  given: { dpop?: DpopProofInput; certificate?: CertificateInput },
  checkDpop: DpopCheck,
): Promise<void> {
  const { cnf } = claims;
  const jkt = cnf?.jkt;
  const x5t = cnf?.['x5t#S256'];
  if (cnf && jkt === undefined && x5t === undefined) {
    throw new VerifyError('unsupported_confirmation', 'the token is bound by a confirmation method this verifier does not check');
  }
  if (jkt !== undefined) {
    if (given.dpop === undefined) throw new VerifyError('dpop_proof_required', 'the token is DPoP-bound, and no DPoP proof was presented');
    await checkDpop(given.dpop, token, jkt);
  } else if (given.dpop !== undefined) {
    // RFC 9449 §7.1: the proof's key must be the one the token is bound to; this one is bound to none.
    throw new VerifyError('dpop_key_mismatch', 'a DPoP proof came with a token that is not DPoP-bound');
  }
  if (x5t !== undefined) checkCertificateBinding(given.certificate, x5t);
}

// Authentication context classes (docs/architecture.md, "Tokens and claims").
// The one rule for acr_values: a phishing-resistant sign-in (passkey with user verification,
// NIST SP 800-63B §5.2.5) is stronger than password + second factor, so it also satisfies a
// request for `mfa`. OIDC Core §3.1.2.1 lets the OP decide how to meet requested values.
import { ACR_MFA, ACR_PHR } from '../verify/step-up.ts';

export { ACR_MFA, ACR_PHR };
export const ACR_VALUES = [ACR_MFA, ACR_PHR];

/** The acr values asked for in an authorization request (space-separated), or none. */
export function requestedAcr(acrValues: unknown): string[] {
  return typeof acrValues === 'string' ? acrValues.split(' ').filter(Boolean) : [];
}

/** Does a sign-in at level `have` meet a request for any of `requested`? No request: yes. */
export function satisfiesAcr(requested: readonly string[], have: string | undefined): boolean {
  if (requested.length === 0) return true;
  return requested.some((acr) => acr === have || (acr === ACR_MFA && have === ACR_PHR));
}

/** The acr a sign-in earns from its methods (RFC 8176 amr values). */
export function acrFor(amr: readonly string[]): string {
  return amr.includes('hwk') || amr.includes('swk') ? ACR_PHR : ACR_MFA;
}

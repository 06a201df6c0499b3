// Sender-constrained tokens at issuance (docs/architecture.md, "Sender-constrained tokens"):
// DPoP (RFC 9449) and certificate-bound access tokens (RFC 8705 §3). oidc-provider does the
// binding; this module holds what Gatehouse decides about it, so ./provider.ts only wires it.
import crypto from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { KoaContextWithOIDC } from 'oidc-provider';
import validateDpop, { checkDpopReplay } from 'oidc-provider/lib/helpers/validate_dpop.js';
import { checkDpopRequired, checkMtlsCert } from 'oidc-provider/lib/helpers/sender_constraints.js';

/**
 * DPoP proof algorithms accepted at /token: asymmetric only (RFC 9449 §4.3 check 5). The same
 * list is gatehouse/verify's default (src/verify/dpop.ts), so a proof key the token endpoint took
 * also works at the agentserver.
 */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256'] as const;

/** The label of the DPoP nonce secret derived from the master key (src/crypto/derive-key.ts). */
export const DPOP_NONCE_KEY_LABEL = 'gatehouse dpop nonce v1';

export interface DpopSettings {
  /**
   * 32 bytes, the same on every instance (derived from the master key), so a DPoP-Nonce handed
   * out by one instance is accepted by the others behind the load balancer.
   */
  nonceSecret?: Buffer;
  /** Refuse proofs without a server nonce (`use_dpop_nonce`, RFC 9449 §8). */
  requireNonce?: boolean;
}

/**
 * oidc-provider's `features.dPoP`. Proofs are optional unless the client is registered with
 * `dpop_bound_access_tokens` (`clients create --require-dpop`); a proof binds the access token
 * (`cnf.jkt`, `token_type: DPoP`) and, for public clients, the refresh token. Proof `jti`s are
 * single use through the adapter's ReplayDetection rows, shared by every instance.
 */
export function dpopFeature(settings: DpopSettings) {
  return {
    enabled: true,
    ...(settings.nonceSecret ? { nonceSecret: settings.nonceSecret } : {}),
    requireNonce: () => settings.requireNonce === true && settings.nonceSecret !== undefined,
    allowReplay: false,
  };
}

function tlsSocket(ctx: KoaContextWithOIDC): TLSSocket | undefined {
  const socket = ctx.req.socket as TLSSocket;
  return typeof socket.getPeerCertificate === 'function' ? socket : undefined;
}

/**
 * The client certificate of the TLS connection. Gatehouse terminates TLS itself
 * (src/http/server.ts); no proxy header is ever read for a certificate (GATEHOUSE_TRUST_PROXY
 * covers addresses only), so behind a TLS-terminating proxy no token is certificate-bound and
 * tls_client_auth fails closed. Used for tls_client_auth and for binding (cnf.x5t#S256).
 */
export function clientCertificate(ctx: KoaContextWithOIDC): crypto.X509Certificate | undefined {
  const raw = tlsSocket(ctx)?.getPeerCertificate(false)?.raw;
  return raw ? new crypto.X509Certificate(raw) : undefined;
}

/** Did the certificate chain to GATEHOUSE_TLS_CA_FILE (the only CA the listener trusts)? */
export function clientCertificateAuthorized(ctx: KoaContextWithOIDC): boolean {
  return tlsSocket(ctx)?.authorized === true;
}

/** What a token Gatehouse signs itself must carry to be sender-constrained, and its token_type. */
export interface IssuedTokenBinding {
  cnf?: { jkt?: string; 'x5t#S256'?: string };
  tokenType: 'DPoP' | 'Bearer';
}

/**
 * For a grant whose access token Gatehouse signs itself (a handler registered with
 * `provider.registerGrantType`, such as token exchange): the same checks and binding oidc-provider
 * applies to its own grants at /token. A DPoP proof is validated (method, URL, iat, nonce,
 * signature) and its `jti` recorded once; a `--require-dpop` client without one is refused
 * (`invalid_grant`); a `--certificate-bound` client's token is bound to the connection's
 * certificate. Put `cnf` in the token's claims and `token_type` in the response.
 */
export async function bindIssuedToken(ctx: KoaContextWithOIDC): Promise<IssuedTokenBinding> {
  const provider = ctx.oidc.provider;
  const client = ctx.oidc.client!;
  const dPoP = await validateDpop(provider, ctx);
  checkDpopRequired(provider, ctx, dPoP);
  const certificate = checkMtlsCert(provider, ctx);
  const cnf: NonNullable<IssuedTokenBinding['cnf']> = {};
  if (certificate) cnf['x5t#S256'] = crypto.hash('sha256', certificate.raw, 'base64url');
  if (dPoP) {
    await checkDpopReplay(provider, ctx, dPoP, client.clientId);
    cnf.jkt = dPoP.thumbprint;
  }
  return Object.keys(cnf).length ? { cnf, tokenType: dPoP ? 'DPoP' : 'Bearer' } : { tokenType: 'Bearer' };
}

// Certificate-bound access tokens at the resource server (RFC 8705 §3): the token's
// `cnf.x5t#S256` must be the SHA-256 thumbprint of the client certificate of the TLS connection
// the token arrived on (docs/architecture.md, "Sender-constrained tokens").
import crypto from 'node:crypto';
import { VerifyError } from './errors.ts';

/**
 * The client certificate as the agentserver has it: PEM text, DER bytes, a Node
 * X509Certificate (`tlsSocket.getPeerX509Certificate()`), or its `x5t#S256` thumbprint
 * (base64url SHA-256 of the DER, as a TLS-terminating proxy may forward it).
 */
export type CertificateInput = string | Uint8Array | crypto.X509Certificate;

const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

/** RFC 8705 §3.1: base64url(SHA-256(DER)). */
export function certificateThumbprint(input: CertificateInput): string {
  if (typeof input === 'string' && THUMBPRINT.test(input)) return input;
  let der: Buffer;
  try {
    if (input instanceof crypto.X509Certificate) der = input.raw;
    else if (typeof input === 'string' && input.includes('-----BEGIN CERTIFICATE-----')) der = new crypto.X509Certificate(input).raw;
    else if (input instanceof Uint8Array) der = new crypto.X509Certificate(Buffer.from(input)).raw;
    else throw new TypeError('not a certificate');
  } catch {
    throw new VerifyError('certificate_mismatch', 'the certificate is not PEM, DER or an x5t#S256 thumbprint');
  }
  return crypto.hash('sha256', der, 'base64url');
}

/** Refuses unless `certificate` is the one the token is bound to. */
export function checkCertificateBinding(certificate: CertificateInput | undefined, boundTo: string): void {
  if (certificate === undefined || certificate === null || certificate === '') {
    throw new VerifyError('certificate_required', 'the token is bound to a client certificate, and none was presented');
  }
  if (certificateThumbprint(certificate) !== boundTo) {
    throw new VerifyError('certificate_mismatch', 'the token is bound to another client certificate');
  }
}

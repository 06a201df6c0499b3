// Client secrets are 256 random bits chosen by Gatehouse, never by a person, so a plain SHA-256
// is a sound way to keep them (nothing to brute-force) and costs microseconds per token request,
// where a password hash would cap the token endpoint at a few dozen requests a second.
import crypto from 'node:crypto';

export function newClientSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export function hashClientSecret(secret: string): string {
  return crypto.createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/** Constant-time comparison of a presented secret against a stored hash. */
export function secretMatches(presented: unknown, storedHash: string | null | undefined): boolean {
  if (typeof presented !== 'string' || !storedHash) return false;
  const a = Buffer.from(hashClientSecret(presented), 'utf8');
  const b = Buffer.from(storedHash, 'utf8');
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function newClientId(kind: 'service' | 'browser'): string {
  return `${kind === 'service' ? 'svc' : 'app'}_${crypto.randomBytes(15).toString('base64url')}`;
}

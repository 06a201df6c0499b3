// The online check of gatehouse/verify: RFC 7662 introspection at Gatehouse, for the operations
// where the 15-minute offline window is too long (a revoked grant, a disabled person, a withdrawn
// key must stop the token now). Answers are cached briefly per token (by its SHA-256, never the
// token itself) so that a burst of calls with one token costs one request.
import crypto from 'node:crypto';
import { VerifyError } from './errors.ts';

export interface IntrospectionOptions {
  /** A client registered with `gatehouse clients create … --introspect` (a resource server). */
  clientId: string;
  /** Its secret (client_secret_basic). */
  clientSecret: string;
  /** Default `<issuer>/token/introspection`. https, except on a loopback host. */
  endpoint?: string;
  /** How long an answer is reused, ms. Default 10000; 0 asks every time. A cached `active` never outlives the token's `exp`. */
  cacheMs?: number;
  /** Abort the request after this long, ms. Default 3000. */
  timeoutMs?: number;
}

const MAX_ENTRIES = 10_000;

export function introspector(issuer: string, o: IntrospectionOptions, checkUrl: (u: string) => URL) {
  if (!o.clientId || !o.clientSecret) throw new TypeError('introspection needs clientId and clientSecret');
  const endpoint = checkUrl(o.endpoint ?? `${issuer.replace(/\/+$/, '')}/token/introspection`);
  const cacheMs = o.cacheMs ?? 10_000;
  const timeoutMs = o.timeoutMs ?? 3_000;
  // RFC 6749 §2.3.1: form-urlencode id and secret before Basic encoding.
  const basic = Buffer.from(`${encodeURIComponent(o.clientId)}:${encodeURIComponent(o.clientSecret)}`).toString('base64');
  const cache = new Map<string, { active: boolean; until: number }>();

  return async function isActive(token: string, exp: number): Promise<boolean> {
    const key = crypto.createHash('sha256').update(token).digest('base64url');
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.active;
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}`, accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new VerifyError('introspection_unavailable', 'the introspection endpoint could not be reached', { cause: err });
    }
    if (!res.ok) throw new VerifyError('introspection_unavailable', `the introspection endpoint answered ${res.status}`);
    const body = (await res.json().catch(() => null)) as { active?: unknown } | null;
    if (!body || typeof body.active !== 'boolean') throw new VerifyError('introspection_unavailable', 'not an introspection response');
    if (cacheMs > 0) {
      if (cache.size >= MAX_ENTRIES) cache.clear();
      cache.set(key, { active: body.active, until: Math.min(now + cacheMs, exp * 1000) });
    }
    return body.active;
  };
}

// DPoP proofs at the resource server (RFC 9449 §4.3 and §7.1): the checks gatehouse/verify runs
// when a token carries `cnf.jkt`. Everything here is offline; replays are caught by a bounded
// in-memory cache of the proofs' `jti`s, one per verifier (docs/architecture.md, "Sender-constrained tokens").
import crypto from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, errors, jwtVerify, type JWK } from 'jose';
import { VerifyError } from './errors.ts';

/** Asymmetric algorithms only (RFC 9449 §4.3 check 5); the same list Gatehouse accepts at /token. */
export const DEFAULT_DPOP_ALGORITHMS: readonly string[] = ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256'];

export interface DpopVerifierOptions {
  /** Proof algorithms accepted. Default DEFAULT_DPOP_ALGORITHMS; `none` and HS* are refused. */
  algorithms?: string[];
  /** How old a proof's `iat` may be, seconds. Default 60. */
  maxAgeSeconds?: number;
  /** Most `jti`s remembered at once. Default 100000; when full, proofs are refused (`replay_cache_full`) rather than a replay let through. */
  replayCacheSize?: number;
}

/** The request the proof must be for, as the agentserver received it. */
export interface DpopProofInput {
  /** The `DPoP` request header: exactly one proof JWT. */
  proof: string;
  /** The request method, e.g. `POST`. */
  method: string;
  /** The request URL as the client addressed it (scheme, host, port, path); query and fragment are ignored. */
  url: string | URL;
  /** A nonce this resource server handed out (`DPoP-Nonce`); the proof must carry it. */
  nonce?: string;
}

/**
 * RFC 9449 §4.3 check 9: `htu` compared without query and fragment, after syntax- and
 * scheme-based normalization (RFC 3986 §6.2.2, §6.2.3): the WHATWG URL parser lowercases the
 * scheme and host, drops a default port, resolves dot segments and normalizes percent-encoding
 * case of the host; an empty path becomes `/`.
 */
export function normalizeHtu(value: string | URL): string | null {
  const url = value instanceof URL ? new URL(value.href) : URL.parse(value);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) return null;
  url.search = '';
  url.hash = '';
  url.username = '';
  url.password = '';
  return url.href;
}

/** `jti`s seen, each kept while a proof carrying it could still pass the `iat` check. */
export class ReplayCache {
  readonly #max: number;
  readonly #ttlMs: number;
  // Insertion order is expiry order (one ttl for all), so expired entries sit at the head.
  readonly #seen = new Map<string, number>();

  constructor(max: number, ttlMs: number) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError('replayCacheSize must be a positive integer');
    this.#max = max;
    this.#ttlMs = ttlMs;
  }

  get size(): number {
    return this.#seen.size;
  }

  /** 'new' the first time a key is seen within its lifetime, 'seen' after, 'full' when nothing more fits. */
  add(key: string, now = Date.now()): 'new' | 'seen' | 'full' {
    for (const [k, expires] of this.#seen) {
      if (expires > now) break;
      this.#seen.delete(k);
    }
    const expires = this.#seen.get(key);
    if (expires !== undefined && expires > now) return 'seen';
    if (this.#seen.size >= this.#max) return 'full';
    this.#seen.set(key, now + this.#ttlMs);
    return 'new';
  }
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_PROOF_LENGTH = 8192;
const MAX_JTI_LENGTH = 256;

function invalid(message: string): never {
  throw new VerifyError('invalid_dpop_proof', message);
}

export type DpopCheck = (input: DpopProofInput, token: string, jkt: string) => Promise<void>;

/**
 * A checker for proofs presented with a token bound to `jkt` (its `cnf.jkt`). Rejects with a
 * VerifyError: `invalid_dpop_proof`, `use_dpop_nonce`, `dpop_key_mismatch`, `dpop_replay`, `replay_cache_full`.
 */
export function dpopChecker(options: DpopVerifierOptions = {}, clockToleranceSeconds = 30): DpopCheck {
  const algorithms = [...(options.algorithms ?? DEFAULT_DPOP_ALGORITHMS)];
  if (algorithms.length === 0 || algorithms.some((a) => a.toLowerCase() === 'none' || /^HS/i.test(a))) {
    throw new TypeError('DPoP proof algorithms must be asymmetric');
  }
  const maxAge = options.maxAgeSeconds ?? 60;
  if (!Number.isFinite(maxAge) || maxAge <= 0) throw new TypeError('dpop.maxAgeSeconds must be positive');
  const tolerance = clockToleranceSeconds;
  // A proof with iat = now + tolerance passes until iat + maxAge + tolerance.
  const replays = new ReplayCache(options.replayCacheSize ?? 100_000, (maxAge + 2 * tolerance) * 1000);

  return async (input, token, jkt) => {
    if (typeof input !== 'object' || input === null) throw new TypeError('dpop must be { proof, method, url }');
    if (typeof input.method !== 'string' || input.method === '') throw new TypeError('dpop.method is required');
    const expectedHtu = normalizeHtu(input.url);
    if (!expectedHtu) throw new TypeError('dpop.url must be an absolute http(s) URL');
    const { proof } = input;
    // RFC 9449 §4.3 checks 1-2: one well-formed JWT (two DPoP headers joined by a comma fail here).
    if (typeof proof !== 'string' || proof.length > MAX_PROOF_LENGTH || !COMPACT_JWS.test(proof)) {
      invalid('the DPoP header must hold exactly one proof JWT');
    }

    let header: { typ?: unknown; jwk?: JWK };
    let payload: Record<string, unknown>;
    try {
      // Checks 4-6: typ, an allowed asymmetric alg, the signature by the embedded public jwk.
      ({ protectedHeader: header, payload } = await jwtVerify(proof, EmbeddedJWK, { algorithms, typ: 'dpop+jwt' }));
    } catch (err) {
      if (err instanceof errors.JOSEAlgNotAllowed) invalid('the proof algorithm is not allowed');
      if (err instanceof errors.JWSSignatureVerificationFailed) invalid('the proof signature does not verify with its jwk');
      if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'typ') invalid('the proof typ must be dpop+jwt');
      invalid('the proof is not a valid DPoP JWT with an embedded public jwk');
    }
    // jose also takes "application/dpop+jwt"; RFC 9449 §4.2 names exactly "dpop+jwt".
    if (header.typ !== 'dpop+jwt') invalid('the proof typ must be dpop+jwt');
    const jwk = header.jwk!;
    if ('d' in jwk || jwk.kty === 'oct') invalid('the proof jwk must be a public key');

    // Check 3: the required claims, of the right types.
    const { jti, htm, htu, iat, ath, nonce } = payload;
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) invalid('the proof jti must be a string of 1-256 characters');
    if (typeof iat !== 'number' || !Number.isFinite(iat)) invalid('the proof iat must be a number');
    // Check 8: the method; check 9: the URL.
    if (htm !== input.method.toUpperCase()) invalid('the proof is for another HTTP method (htm)');
    if (typeof htu !== 'string' || normalizeHtu(htu) !== expectedHtu) invalid('the proof is for another URL (htu)');
    // Check 11: recent enough, not from the future.
    const now = Math.floor(Date.now() / 1000);
    if (iat < now - maxAge - tolerance) invalid('the proof is too old (iat)');
    if (iat > now + tolerance) invalid('the proof iat is in the future');
    // Check 12: the proof was made for this token.
    if (typeof ath !== 'string' || ath !== crypto.hash('sha256', token, 'base64url')) {
      invalid('the proof is for another access token (ath)');
    }
    // Check 7: a nonce this resource server asked for.
    if (input.nonce !== undefined && nonce !== input.nonce) {
      throw new VerifyError('use_dpop_nonce', 'the proof must carry the nonce this resource server provided');
    }
    // Check 12: the key the token is bound to.
    const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
    if (thumbprint !== jkt) throw new VerifyError('dpop_key_mismatch', 'the proof is signed by another key than the token is bound to');
    // Check 10, last, so that a proof refused for any other reason does not fill the cache.
    const seen = replays.add(crypto.hash('sha256', `${thumbprint}.${jti}`, 'base64url'));
    if (seen === 'seen') throw new VerifyError('dpop_replay', 'the proof jti was already used');
    if (seen === 'full') throw new VerifyError('replay_cache_full', 'the DPoP replay cache is full; try again shortly');
  };
}

// gatehouse/verify: offline verification of Gatehouse access tokens for the agentserver.
// Plain RFC 9068 §4 rules, so a verifier in any language can apply the same ones.
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { parseClaims, type AccessTokenClaims } from './claims.ts';
import { toVerifyError, VerifyError } from './errors.ts';
import { introspector, type IntrospectionOptions } from './online.ts';
import { checkSenderConstraint } from './sender-constraint.ts';
import { dpopChecker, type DpopProofInput, type DpopVerifierOptions } from './dpop.ts';
import type { CertificateInput } from './mtls.ts';
import { logoutTokenVerifier, type LogoutTokenClaims } from './logout.ts';

export type { IntrospectionOptions } from './online.ts';
export { LOGOUT_EVENT, type LogoutTokenClaims } from './logout.ts';

export { can, hasRole, parseClaims, type AccessTokenClaims, type Confirmation } from './claims.ts';
export { actingAgent, actorChain, isDelegated, type ActorClaim } from './delegation.ts';
export { DEFAULT_DPOP_ALGORITHMS, normalizeHtu, type DpopProofInput, type DpopVerifierOptions } from './dpop.ts';
export { certificateThumbprint, type CertificateInput } from './mtls.ts';
export { VERIFY_ERROR_CODES, VerifyError, type VerifyErrorCode } from './errors.ts';
export {
  ACR_MFA,
  ACR_MFA_OR_STRONGER,
  ACR_PHR,
  checkAuthentication,
  stepUpChallenge,
  type AuthenticationCheck,
  type StepUpChallengeOptions,
  type StepUpRequirement,
} from './step-up.ts';

/** Asymmetric algorithms only: Gatehouse signs with ES256 by default (docs/architecture.md, "Tokens and claims"). */
export const DEFAULT_ALGORITHMS: readonly string[] = ['ES256', 'EdDSA', 'RS256', 'PS256'];

export interface VerifierOptions {
  /** Exact `iss` value, e.g. `https://id.example.com`. */
  issuer: string;
  /** This resource server's identifier(s); the token's `aud` must contain one (RFC 8707). */
  audience: string | string[];
  /** Default `<issuer>/jwks`. Must be https, except on a loopback host. */
  jwksUri?: string;
  /** A key set given directly (tests, air-gapped use): no HTTP at all. */
  jwks?: JSONWebKeySet;
  /** Default DEFAULT_ALGORITHMS. `none` and HS* are refused. */
  algorithms?: string[];
  /** Allowed clock skew for exp/nbf, seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** Minimum time between two JWKS fetches triggered by unknown kids, ms. Default 30000. */
  cooldownMs?: number;
  /** Refetch the JWKS when the cached copy is older than this, ms. Default 600000. */
  cacheMaxAgeMs?: number;
  /** Abort a JWKS fetch after this long, ms. Default 5000. */
  timeoutMs?: number;
  /** Client credentials for the online check (`verify(token, { online: true })`). */
  introspection?: IntrospectionOptions;
  /** DPoP proof checks (`verify(token, { dpop })`): algorithms, proof age, replay cache size. */
  dpop?: DpopVerifierOptions;
  /** This service's client id at Gatehouse: the `aud` of the logout tokens it receives (`verifyLogoutToken`). */
  clientId?: string;
  /** verifyLogoutToken: how old (by `iat`) a logout token may be, seconds. Default 120. */
  logoutTokenMaxAgeSeconds?: number;
  /** verifyLogoutToken: how many accepted `jti`s are remembered against replay. Default 10000. */
  logoutReplayCacheSize?: number;
}

export interface VerifyOptions {
  /** After the offline checks, ask Gatehouse whether the token is still active (RFC 7662):
   * rejects with `inactive` once its grant is revoked, its person disabled or its key withdrawn.
   * Needs the `introspection` option of createVerifier. */
  online?: boolean;
  /** The request's DPoP proof (RFC 9449): required for a token with `cnf.jkt`, refused with one without. */
  dpop?: DpopProofInput;
  /** The TLS client certificate (RFC 8705): required for a token with `cnf.x5t#S256`. */
  certificate?: CertificateInput;
  /** Default true. false: a delegated token (an agent acting for the person, `act`) is refused with
   * `delegated_token`, for operations only the person may take (owner operations, for example). */
  allowDelegated?: boolean;
}

export interface Verifier {
  /** Resolves to the typed claims, or rejects with a VerifyError. */
  verify(token: string, options?: VerifyOptions): Promise<AccessTokenClaims>;
  /**
   * Back-Channel Logout 1.0 §2.6: the `logout_token` POSTed to this service's
   * backchannel_logout_uri. Resolves to its claims (drop whatever belongs to `sid`, or to every
   * session of `sub`), or rejects with a VerifyError (answer 400). Needs the `clientId` option.
   */
  verifyLogoutToken(token: string): Promise<LogoutTokenClaims>;
}

// RFC 9068 §4: the token MUST be rejected when alg is none; HS* with a public key as the shared
// secret is the classic algorithm-confusion forgery, so symmetric algorithms are never allowed.
function checkAlgorithms(algorithms: readonly string[]): string[] {
  if (algorithms.length === 0) throw new TypeError('algorithms must not be empty');
  for (const alg of algorithms) {
    if (alg.toLowerCase() === 'none' || /^HS/i.test(alg)) throw new TypeError(`algorithm ${alg} is not allowed for access tokens`);
  }
  return [...algorithms];
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

// Whoever can change the JWKS in transit can mint tokens: plain http only where it cannot leave
// the machine (the same rule docs/architecture.md, "Configuration", sets for the issuer).
function checkedUrl(value: string, name = 'introspection endpoint'): URL {
  const url = new URL(value);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    throw new TypeError(`${name} must be https (http is allowed only on a loopback host)`);
  }
  return url;
}

function jwksUrl(options: VerifierOptions): URL {
  return checkedUrl(options.jwksUri ?? `${options.issuer.replace(/\/+$/, '')}/jwks`, 'jwksUri');
}

// Separate "no such key" (the token's fault, or a rotation: jose refetches) from "could not get
// the keys at all" (ours), so the agentserver can answer 401 for one and 503 for the other.
function keyResolver(options: VerifierOptions): JWTVerifyGetKey {
  const resolve: JWTVerifyGetKey = options.jwks
    ? createLocalJWKSet(options.jwks)
    : createRemoteJWKSet(jwksUrl(options), {
        cooldownDuration: options.cooldownMs ?? 30_000,
        cacheMaxAge: options.cacheMaxAgeMs ?? 600_000,
        timeoutDuration: options.timeoutMs ?? 5_000,
      });
  return async (header, token) => {
    try {
      return await resolve(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      throw new VerifyError('jwks_unavailable', 'the JWKS could not be fetched or used', { cause: err });
    }
  };
}

export function createVerifier(options: VerifierOptions): Verifier {
  if (typeof options.issuer !== 'string' || options.issuer === '') throw new TypeError('issuer is required');
  const audience = typeof options.audience === 'string' ? [options.audience] : [...options.audience];
  if (audience.length === 0 || audience.some((a) => typeof a !== 'string' || a === '')) throw new TypeError('audience is required');
  const algorithms = checkAlgorithms(options.algorithms ?? DEFAULT_ALGORITHMS);
  const clockTolerance = options.clockToleranceSeconds ?? 30;
  const getKey = keyResolver(options);
  const checkDpop = dpopChecker(options.dpop, clockTolerance);
  const isActive = options.introspection ? introspector(options.issuer, options.introspection, checkedUrl) : null;
  const verifyLogout = options.clientId
    ? logoutTokenVerifier({
        issuer: options.issuer,
        clientId: options.clientId,
        algorithms,
        clockTolerance,
        getKey,
        maxAgeSeconds: options.logoutTokenMaxAgeSeconds,
        replayCacheSize: options.logoutReplayCacheSize,
      })
    : null;

  return {
    verifyLogoutToken(token: string): Promise<LogoutTokenClaims> {
      if (!verifyLogout) return Promise.reject(new TypeError('verifyLogoutToken needs the clientId option'));
      return verifyLogout(token);
    },
    async verify(token: string, verifyOptions: VerifyOptions = {}): Promise<AccessTokenClaims> {
      if (typeof token !== 'string' || token === '') throw new VerifyError('malformed', 'no token');
      if (verifyOptions.online && !isActive) throw new TypeError('verify(token, { online: true }) needs the introspection option');
      let claims: AccessTokenClaims;
      try {
        const { payload } = await jwtVerify(token, getKey, {
          algorithms,
          typ: 'at+jwt', // RFC 9068 §4; jose also accepts application/at+jwt
          issuer: options.issuer,
          audience,
          clockTolerance,
          requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
        });
        claims = parseClaims(payload);
      } catch (err) {
        throw toVerifyError(err);
      }
      // An agent's actor token is for Gatehouse (aud = its issuer); should the agentserver share the
      // issuer as its audience, the shape still gives it away: an agent's own client, no `act`.
      if (claims.client_id.startsWith('agt_') && claims.act === undefined) {
        throw new VerifyError('actor_token', 'an agent actor token proves an identity in a token exchange and grants nothing');
      }
      if (verifyOptions.allowDelegated === false && claims.act !== undefined) {
        throw new VerifyError('delegated_token', 'an agent acting for the person may not do this; the person must');
      }
      // A sender-constrained token is worth nothing without its proof or certificate (RFC 9449 §7.2).
      await checkSenderConstraint(token, claims, verifyOptions, checkDpop);
      // Offline first: a forged or expired token never costs a request to Gatehouse.
      if (verifyOptions.online && !(await isActive!(token, claims.exp))) {
        throw new VerifyError('inactive', 'Gatehouse reports the token as no longer active');
      }
      return claims;
    },
  };
}

// RFC 8693 token exchange at /token (docs/architecture.md, "Agents and delegation"): a client
// registered with `--grant token_exchange` (the agentserver's back end) presents a person's
// access token (subject_token) and an agent's actor token (actor_token) and receives a short
// access token with sub = the person, act = { sub: the agent, act: earlier actors }, and only what
// the person, the agent's ceiling and the request all allow. oidc-provider has no token exchange:
// this is a grant type registered on it, so client authentication, allowed networks and the
// per-client token budget apply exactly as for every other grant (and the token fast path of
// src/http/server.ts hands it to the provider like any POST /token).
import { createLocalJWKSet, errors as joseErrors, importJWK, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import crypto from 'node:crypto';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import * as accounts from '../accounts/accounts.repository.ts';
import { isAgentId } from '../agents/agents.service.ts';
import { narrow, parseRequestedScope, type Capabilities } from '../agents/narrowing.ts';
import type { AuditSink } from '../audit/sink.ts';
import { TOKEN_EXCHANGE_GRANT, type ClientCache, type ClientRecord } from '../clients/client-cache.ts';
import type { Db } from '../db/handle.ts';
import type { KeySet } from '../keys/keys.service.ts';
import { GRANT_CLAIM } from './access-token.ts';
import { findLiveGrant } from './grants.repository.ts';
import { publicJwks } from './jwks.ts';
import { isGatehouseError } from '../errors.ts';
import { bindIssuedToken } from './dpop.ts';

export { TOKEN_EXCHANGE_GRANT };
/** RFC 8693 §3: the only token type Gatehouse takes and issues. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** Gatehouse's name for "a shorter lifetime, please" (RFC 8693 defines none): whole seconds. */
export const REQUESTED_LIFETIME_PARAM = 'requested_lifetime';

const PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'requested_token_type',
  'scope',
  'resource',
  'audience',
  REQUESTED_LIFETIME_PARAM,
];

const ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'];
const MAX_TOKEN_LENGTH = 8192;

export interface TokenExchangeDeps {
  issuer: string;
  audience: string;
  accessTokenAlg: string;
  keys: KeySet;
  db: Db;
  clients: ClientCache;
  /** Longest lifetime of a delegated token, seconds (GATEHOUSE_DELEGATION_TTL). */
  maxTtl: number;
  /** Most actors an `act` chain may hold (GATEHOUSE_DELEGATION_MAX_DEPTH). */
  maxDepth: number;
  audit?: AuditSink;
  limitTokenRequest?: (ctx: KoaContextWithOIDC, client: ClientRecord) => Promise<void>;
}

/** RFC 8693 §4.1: the current actor, with the earlier ones nested inside. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** The actors of an `act` claim, newest first; null when it is not a well-formed chain. */
export function actorChain(act: unknown, limit = 16): string[] | null {
  const chain: string[] = [];
  let node = act;
  while (node !== undefined) {
    if (typeof node !== 'object' || node === null || typeof (node as ActClaim).sub !== 'string' || chain.length >= limit) return null;
    chain.push((node as ActClaim).sub);
    node = (node as ActClaim).act;
  }
  return chain;
}

const strings = (v: unknown): string[] => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : []);

function param(ctx: KoaContextWithOIDC, name: string): string | undefined {
  const v = (ctx.oidc.params as Record<string, unknown>)[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function required(ctx: KoaContextWithOIDC, name: string): string {
  const v = param(ctx, name);
  if (v === undefined) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
  return v;
}

/** invalid_grant saying why: oidc-provider's own says only "grant request is invalid". Nothing here
 * is secret (which check failed), and the agentserver needs it to tell a sign-out from a bug. */
function invalidGrant(detail: string): errors.OIDCProviderError {
  const e = new errors.InvalidGrant(detail);
  e.error_description = detail;
  return e;
}

/** 503 in oidc-provider's error shape: the exchange could not be recorded, so it is not made. */
class AuditUnavailable extends errors.OIDCProviderError {
  constructor() {
    super(503, 'temporarily_unavailable');
    this.error_description = 'the audit log is full: retry shortly';
  }
}

class Refused extends Error {
  readonly error: errors.OIDCProviderError;
  readonly person: string | null;
  constructor(error: errors.OIDCProviderError, person: string | null) {
    super(error.message);
    this.error = error;
    this.person = person;
  }
}

export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const jwks = createLocalJWKSet(publicJwks(deps.keys) as any);
  let signingKey: ReturnType<typeof importJWK> | null = null;
  const key = () => {
    const kid = deps.keys.currentKid[deps.accessTokenAlg as keyof KeySet['currentKid']];
    const jwk = deps.keys.signing.find((k) => k.kid === kid);
    if (!kid || !jwk) throw new Error(`no current ${deps.accessTokenAlg} signing key`);
    signingKey ??= importJWK(jwk as any, deps.accessTokenAlg);
    return { kid, key: signingKey };
  };

  async function verified(token: string, audience: string, what: string): Promise<JWTPayload> {
    if (token.length > MAX_TOKEN_LENGTH) throw invalidGrant(`${what} is not a Gatehouse access token`);
    try {
      const { payload } = await jwtVerify(token, jwks, {
        algorithms: ALGORITHMS,
        typ: 'at+jwt',
        issuer: deps.issuer,
        audience,
        requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id'],
      });
      return payload;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw invalidGrant(`${what} has expired`);
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud')
        throw invalidGrant(`${what} was not issued for this use (aud)`);
      throw invalidGrant(`${what} is not a valid Gatehouse access token`);
    }
  }

  /** An agent that exists and is not disabled. */
  async function liveAgent(id: string): Promise<ClientRecord | null> {
    const record = isAgentId(id) ? await deps.clients.get(id) : null;
    return record && record.kind === 'agent' && !record.disabled ? record : null;
  }

  async function exchange(ctx: KoaContextWithOIDC, record: ClientRecord) {
    let person: string | null = null;
    const refuse = (error: errors.OIDCProviderError): never => {
      throw new Refused(error, person);
    };
    try {
      if (!record.tokenExchange) refuse(new errors.UnauthorizedClient('the client is not registered with the token_exchange grant'));
      const subjectToken = required(ctx, 'subject_token');
      const actorToken = required(ctx, 'actor_token');
      if (required(ctx, 'subject_token_type') !== ACCESS_TOKEN_TYPE)
        refuse(new errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`));
      if (required(ctx, 'actor_token_type') !== ACCESS_TOKEN_TYPE)
        refuse(new errors.InvalidRequest(`actor_token_type must be ${ACCESS_TOKEN_TYPE}`));
      const requestedType = param(ctx, 'requested_token_type');
      if (requestedType !== undefined && requestedType !== ACCESS_TOKEN_TYPE)
        refuse(new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE}`));
      // RFC 8707 / RFC 8693 §2.1: the one resource Gatehouse issues tokens for.
      for (const name of ['resource', 'audience']) {
        const target = param(ctx, name);
        if (target !== undefined && target !== deps.audience) refuse(new errors.InvalidTarget(`unknown ${name}`));
      }
      let lifetime = deps.maxTtl;
      const requestedLifetime = param(ctx, REQUESTED_LIFETIME_PARAM);
      if (requestedLifetime !== undefined) {
        if (!/^[1-9]\d{0,6}$/.test(requestedLifetime))
          refuse(new errors.InvalidRequest(`${REQUESTED_LIFETIME_PARAM} must be a whole number of seconds`));
        lifetime = Math.min(lifetime, Number(requestedLifetime));
      }
      const scope = param(ctx, 'scope');
      const requested = scope === undefined ? undefined : parseRequestedScope(scope);
      if (requested && requested.unknown.length > 0)
        refuse(new errors.InvalidScope('scope holds words that are neither roles nor <kind>:<id>:<action> permissions', scope ?? ''));

      // The subject: a person's access token for the agentserver, or a delegated one (nesting).
      const subject = await verified(subjectToken, deps.audience, 'subject_token');
      const sub = subject.sub!;
      if (isAgentId(sub) || isAgentId(subject.client_id) || sub === subject.client_id)
        refuse(invalidGrant('subject_token is not a person token'));
      const account = await accounts.findAccount(deps.db, sub);
      if (!account) refuse(invalidGrant('subject_token is not a person token'));
      person = sub;
      if (account!.status !== 'active') refuse(invalidGrant('the person is disabled'));
      const grantId = subject[GRANT_CLAIM];
      if (grantId !== undefined) {
        const grant = typeof grantId === 'string' ? await findLiveGrant(deps.db, grantId) : undefined;
        if (!grant || grant.accountId !== sub) refuse(invalidGrant('subject_token is no longer active (signed out or revoked)'));
      }
      const earlier = subject.act === undefined ? [] : actorChain(subject.act);
      if (earlier === null) refuse(invalidGrant('subject_token has a malformed act claim'));
      if (earlier!.length >= deps.maxDepth) refuse(invalidGrant(`delegation deeper than ${deps.maxDepth} actors is not allowed`));
      for (const id of earlier!) {
        if (!(await liveAgent(id))) refuse(invalidGrant('an earlier actor of subject_token is disabled or deleted'));
      }

      // The actor: an agent's own client-credentials token (aud = Gatehouse's issuer).
      const actor = await verified(actorToken, deps.issuer, 'actor_token');
      if (!isAgentId(actor.sub) || actor.client_id !== actor.sub || actor.act !== undefined)
        refuse(invalidGrant('actor_token is not an agent token'));
      const agent = await liveAgent(actor.sub!);
      if (!agent) refuse(invalidGrant('the agent is disabled or deleted'));

      // Never wider than the person now, the subject token, the agent's ceiling, or the request.
      const now: Capabilities = { roles: [account!.role], permissions: strings(account!.permissions) };
      const held: Capabilities = { roles: strings(subject.roles), permissions: strings(subject.permissions) };
      const ceiling: Capabilities = { roles: agent!.roles, permissions: agent!.permissions };
      const granted = narrow(narrow(now, held), ceiling, requested);
      if (granted.roles.length === 0 && granted.permissions.length === 0)
        refuse(new errors.InvalidScope('the person, the agent and the request have no permission in common', scope ?? ''));

      const iat = Math.floor(Date.now() / 1000);
      const exp = Math.min(iat + lifetime, subject.exp!);
      if (exp <= iat) refuse(invalidGrant('subject_token has expired'));
      const act: ActClaim = { sub: actor.sub!, ...(subject.act !== undefined ? { act: subject.act as ActClaim } : {}) };
      const grantedScope = [...granted.roles, ...granted.permissions].join(' ');
      const claims: Record<string, unknown> = {
        client_id: ctx.oidc.client!.clientId,
        scope: grantedScope,
        roles: granted.roles,
        permissions: granted.permissions,
        act,
      };
      // How the person signed in still holds for step-up checks; the grant lets Gatehouse tell online
      // whether the sign-in behind it is still alive (src/oidc/access-token.ts).
      for (const name of ['auth_time', 'acr', 'amr', 'sid', GRANT_CLAIM]) if (subject[name] !== undefined) claims[name] = subject[name];
      // Bound to the key the agent holds (a DPoP proof on this request) or to the client certificate,
      // like the library's own grants (./dpop.ts); checked last, so a refused exchange records no proof.
      const binding = await bindIssuedToken(ctx);
      if (binding.cnf) claims.cnf = binding.cnf;
      const { kid, key: signing } = key();
      const accessToken = await new SignJWT(claims)
        .setProtectedHeader({ alg: deps.accessTokenAlg, kid, typ: 'at+jwt' })
        .setIssuer(deps.issuer)
        .setSubject(sub)
        .setAudience(deps.audience)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .setJti(crypto.randomBytes(21).toString('base64url'))
        .sign(await signing);
      return {
        accessToken,
        tokenType: binding.tokenType,
        exp,
        iat,
        granted,
        grantedScope,
        chain: [actor.sub!, ...earlier!],
        person: sub,
      };
    } catch (err) {
      if (err instanceof Refused) throw err;
      if (err instanceof errors.OIDCProviderError) throw new Refused(err, person);
      throw err;
    }
  }

  const requestIdOf = (ctx: KoaContextWithOIDC) => String(ctx.res.getHeader('x-request-id') ?? '') || null;

  async function handler(ctx: KoaContextWithOIDC): Promise<void> {
    const clientId = ctx.oidc.client!.clientId;
    const record = await deps.clients.get(clientId);
    if (!record) throw new errors.InvalidClient('client not found');
    // The client's token budget, as for every grant (src/oidc/rate-limit-hooks.ts).
    if (deps.limitTokenRequest) await deps.limitTokenRequest(ctx, record);
    let result: Awaited<ReturnType<typeof exchange>>;
    try {
      result = await exchange(ctx, record);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      // A refusal is answered as it is, even if its record cannot be queued.
      await deps
        .audit?.({
          action: 'token.exchange',
          outcome: 'denied',
          actor: clientId,
          target: err.person,
          ip: ctx.ip,
          requestId: requestIdOf(ctx),
          details: { client_id: clientId, error: err.error.error, reason: err.error.error_description ?? err.error.message },
        })
        .catch(() => undefined);
      throw err.error;
    }
    // No delegated token leaves unrecorded: a full audit queue answers 503 (as src/http/audit-capacity.ts does elsewhere).
    await deps
      .audit?.({
        action: 'token.exchange',
        outcome: 'success',
        actor: clientId,
        target: result.person,
        ip: ctx.ip,
        requestId: requestIdOf(ctx),
        details: {
          person: result.person,
          actors: result.chain,
          client_id: clientId,
          roles: result.granted.roles,
          permissions: result.granted.permissions,
          audience: deps.audience,
          expires_in: result.exp - result.iat,
        },
      })
      .catch((err) => {
        if (isGatehouseError(err) && err.code === 'UNAVAILABLE') throw new AuditUnavailable();
        throw err;
      });
    ctx.body = {
      access_token: result.accessToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: result.tokenType,
      expires_in: result.exp - result.iat,
      scope: result.grantedScope,
    };
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handler as any, PARAMETERS);
}

// The one oidc-provider configuration. Only what differs from the library's defaults is listed,
// each with the reason (docs/architecture.md, "oidc-provider defaults that Gatehouse changes"). People come
// in through ./account-hooks.ts, logout pages through ./logout.ts.
import crypto from 'node:crypto';
import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { ClientCache, ClientRecord } from '../clients/client-cache.ts';
import { secretMatches } from '../clients/secret.ts';
import { ipAllowed } from '../clients/networks.ts';
import type { KeySet } from '../keys/keys.service.ts';
import { adapterFactory } from './adapter.ts';
import { renderErrorPage } from './error-page.ts';
import { loadFirstPartyGrant } from './first-party-grant.ts';
import { accountTokenClaimsHook, findAccountHook } from './account-hooks.ts';
import { rpInitiatedLogout } from './logout.ts';
import { ACR_VALUES, requestedAcr, satisfiesAcr } from './acr.ts';
import { ACCESS_TOKEN_TTL, AUTHORIZATION_CODE_TTL, DEVICE_CODE_TTL, ID_TOKEN_TTL, INTERACTION_TTL } from './lifetimes.ts';
import type { Db } from '../db/handle.ts';
import { expiresWithSession, extendOnRefresh, sessionTtl, type SessionLimits } from './session-lifetime.ts';
import { accessTokenChecker, GRANT_CLAIM } from './access-token.ts';
import { introspectJwtAccessTokens, introspectionFeature } from './introspection.ts';
import { allowFormPostToRedirectUri } from './form-post.ts';
import { clientCertificate, clientCertificateAuthorized, DPOP_ALGORITHMS, dpopFeature, type DpopSettings } from './dpop.ts';
import { deviceFlowFeature, type DeviceFlowHooks } from './device-flow.ts';
import { AUDIT_APPEND } from '../authz/model.ts';
import { registerTokenExchange } from './token-exchange.ts';
import { isAgentId } from '../agents/agents.service.ts';
import type { AuditSink } from '../audit/sink.ts';

// src/cli/context.ts still imports it from here; new code imports ./lifetimes.ts.

export interface ProviderDeps {
  issuer: string;
  audience: string;
  accessTokenAlg: string;
  keys: KeySet;
  db: Db;
  clients: ClientCache;
  cookieKeys: string[];
  trustProxy: boolean;
  refreshIdleTtl: number;
  refreshAbsoluteTtl: number;
  session: SessionLimits;
  /** The client's token budget (src/oidc/rate-limit-hooks.ts); allowed networks are checked at client lookup there too. */
  limitTokenRequest?: (ctx: KoaContextWithOIDC, client: ClientRecord) => Promise<void>;
  /** DPoP nonces and whether they are required (./dpop.ts). */
  dpop?: DpopSettings;
  /** RFC 8693 token exchange (./token-exchange.ts): longest delegated lifetime and deepest `act` chain. */
  delegation?: { maxTtl: number; maxDepth: number };
  /** Where token exchanges are audited. */
  audit?: AuditSink;
  /** The device flow's wrong-user-code counting (src/oidc/device-flow.ts). */
  deviceFlow?: DeviceFlowHooks;
}

/** Requested acr_values the session does not meet force a new sign-in (OIDC Core §3.1.2.1). */
function acrValuesCheck() {
  return new interactionPolicy.Check('acr_values_unmet', 'requested ACR could not be obtained', (ctx) => {
    const satisfied = satisfiesAcr(requestedAcr(ctx.oidc.params?.acr_values), ctx.oidc.session?.acr);
    return satisfied ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
  });
}

/** oidc-provider's default sign-in policy, plus acr_values honoured. */
function signInPolicy() {
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(acrValuesCheck());
  return policy;
}

export function buildProvider(deps: ProviderDeps): Provider {
  const { audience, clients } = deps;
  const accountTokenClaims = accountTokenClaimsHook(deps.db);
  const policy = signInPolicy();

  const configuration: Configuration = {
    adapter: adapterFactory({ db: deps.db, clients }) as unknown as Configuration['adapter'],
    jwks: { keys: deps.keys.signing as any },
    cookies: { keys: deps.cookieKeys },
    clients: [],
    // Only the client authentication methods Gatehouse supports are advertised and accepted.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'none'],
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    enabledJWA: {
      clientAuthSigningAlgValues: ['ES256', 'EdDSA', 'RS256', 'PS256'],
      idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA', 'PS256'],
      dPoPSigningAlgValues: [...DPOP_ALGORITHMS],
    },
    // Code flow only (OAuth 2.1): no implicit or hybrid response types.
    responseTypes: ['code'],
    // PKCE for every client, confidential ones included (OAuth 2.1 §4.1.1); S256 is the only method in v9.
    pkce: { required: () => true },
    // Rotate on every use; a rotated token coming back revokes the grant (RFC 9700 §4.14.2).
    rotateRefreshToken: true,
    scopes: ['openid', 'offline_access', 'email', 'agents'],
    // acr, amr and auth_time ride with openid so every ID token says how and when the person signed in.
    claims: { openid: ['sub', 'acr', 'amr', 'auth_time'], email: ['email', 'email_verified'], sid: null },
    acrValues: ACR_VALUES,
    // First-party applications registered with the refresh_token grant get refresh tokens without
    // a consent screen (oidc-provider otherwise drops offline_access unless prompt=consent). They
    // expire with the sign-in session, so logging out or a password change ends them too.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // offline_access included: a person's refresh tokens die with the session (./session-lifetime.ts).
    expiresWithSession,
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
      AuthorizationCode: AUTHORIZATION_CODE_TTL,
      IdToken: ID_TOKEN_TTL,
      Interaction: INTERACTION_TTL,
      DeviceCode: DEVICE_CODE_TTL,
      // A grant belongs to one session, which ends by GATEHOUSE_SESSION_MAX_TTL at the latest.
      Grant: deps.session.maxTtl,
      Session: (_ctx, session) => sessionTtl(deps.session, session as { loginTs?: number }),
      // Idle lifetime per token, capped by the absolute lifetime of the grant it belongs to.
      RefreshToken: (ctx, token) => {
        const issued = (token as any).iiat ?? (token as any).iat;
        const absoluteLeft = issued ? deps.refreshAbsoluteTtl - (Math.floor(Date.now() / 1000) - issued) : deps.refreshAbsoluteTtl;
        return Math.max(1, Math.min(deps.refreshIdleTtl, absoluteLeft));
      },
    },
    features: {
      devInteractions: { enabled: false }, // never in production; Gatehouse has its own pages
      clientCredentials: { enabled: true },
      introspection: introspectionFeature(clients),
      revocation: { enabled: true },
      userinfo: { enabled: true },
      // Sender-constrained tokens (./dpop.ts); gatehouse/verify checks the proofs offline.
      dPoP: dpopFeature(deps.dpop ?? {}),
      pushedAuthorizationRequests: { enabled: false },
      rpInitiatedLogout,
      // Command lines sign in with RFC 8628 (./device-flow.ts); logout tokens go through Gatehouse's
      // own outbox and sender (./backchannel-logout.ts), the feature only accepts the client metadata.
      deviceFlow: deviceFlowFeature(deps.deviceFlow),
      backchannelLogout: { enabled: true },
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        // cnf.x5t#S256 for clients registered with tls_client_certificate_bound_access_tokens.
        certificateBoundAccessTokens: true,
        getCertificate: clientCertificate,
        certificateAuthorized: clientCertificateAuthorized,
        certificateSubjectMatches(ctx, property, expected) {
          if (property !== 'tls_client_auth_subject_dn') return false;
          const raw = (ctx.req.socket as import('node:tls').TLSSocket).getPeerCertificate(false)?.raw;
          if (!raw) return false;
          // RFC 8705 §2.1.2: the subject DN must match exactly; compared here as "K=V,K=V".
          const subject = new crypto.X509Certificate(raw).subject.split('\n').join(',');
          return subject === expected.split(/\s*,\s*/).join(',');
        },
      },
      resourceIndicators: {
        enabled: true,
        // Tokens are for the agentserver unless a client names another known resource.
        // An agent's client credentials give only an actor token, for Gatehouse itself (aud = the
        // issuer): the agentserver refuses it; its one use is a token exchange (./token-exchange.ts).
        defaultResource: (_ctx, client) => (client && isAgentId(client.clientId) ? deps.issuer : audience),
        useGrantedResource: () => true,
        async getResourceServerInfo(ctx, resourceIndicator, client) {
          // Two resources: the agentserver (the configured audience), and Gatehouse itself. An
          // agent's client credentials give only an actor token for the issuer (its one use is a
          // token exchange, ./token-exchange.ts). Otherwise a token for the issuer is given only at
          // /token, by the client-credentials grant, to a service client holding audit:append, for
          // audit ingestion (docs/architecture.md, "Audit ingestion"). A person's token or any other
          // client's never names the issuer, so none of them can be replayed at POST /audit/events.
          const actor = isAgentId(client.clientId);
          const forGatehouse = !actor && resourceIndicator === deps.issuer && resourceIndicator !== audience;
          if (actor ? resourceIndicator !== deps.issuer : resourceIndicator !== audience && !forGatehouse) {
            throw new errors.InvalidTarget('unknown resource');
          }
          const record = await clients.get(client.clientId);
          if (
            forGatehouse &&
            (ctx.oidc.route !== 'token' ||
              ctx.oidc.params?.grant_type !== 'client_credentials' ||
              record?.kind !== 'service' ||
              !record.permissions.some((p) => p === AUDIT_APPEND))
          ) {
            throw new errors.InvalidTarget('the issuer is a resource only for service clients holding audit:append');
          }
          // Allowed source networks (docs/architecture.md, "Service clients"). The same error as a wrong
          // secret, so a caller outside the network learns nothing about the credentials.
          if (ctx.oidc.route === 'token' && record && record.allowedCidrs.length > 0 && !ipAllowed(ctx.ip, record.allowedCidrs)) {
            throw new errors.InvalidClientAuth('source address not in the client allowed networks');
          }
          if (record && deps.limitTokenRequest) await deps.limitTokenRequest(ctx, record);
          return {
            // What a token for the agentserver may carry. A person's token also carries the OIDC
            // scopes granted, so `scope` in the token and in the token response says what was
            // granted (RFC 6749 §5.1) and the token is accepted at userinfo (./userinfo.ts).
            // An actor or ingestion token carries no scope: what it may do is in its kind and permissions.
            scope:
              actor || forGatehouse ? '' : client.grantTypeAllowed('client_credentials') ? 'agents' : 'openid offline_access email agents',
            audience: actor || forGatehouse ? deps.issuer : audience,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: {
              sign: { alg: deps.accessTokenAlg as any, kid: deps.keys.currentKid[deps.accessTokenAlg as keyof KeySet['currentKid']] },
            },
          };
        },
      },
    },
    async extraTokenClaims(ctx, token) {
      if (token.kind === 'ClientCredentials') {
        const record = await clients.get((token as any).clientId);
        // An agent's permissions are a ceiling, never a grant: its actor token carries none.
        if (record?.kind === 'agent') return undefined;
        return { roles: record?.roles ?? [], permissions: record?.permissions ?? [] };
      }
      if (token.kind === 'AccessToken' && (token as any).accountId) {
        // The grant lets userinfo and introspection tell whether the token is still alive.
        return { ...(await accountTokenClaims(ctx, (token as any).accountId)), [GRANT_CLAIM]: (token as any).grantId };
      }
      return undefined;
    },
    findAccount: findAccountHook(deps.db),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy },
    // Every client is first-party: the grant covers what is asked without a consent step (./first-party-grant.ts).
    loadExistingGrant: loadFirstPartyGrant(policy.get('login')!) as Configuration['loadExistingGrant'],
    renderError: renderErrorPage,
  };

  const provider = new Provider(deps.issuer, configuration);
  provider.proxy = deps.trustProxy;
  // Behind a proxy, only the address the proxy itself appended counts: a client-sent
  // X-Forwarded-For must not choose the IP that rate limits and allowed networks see.
  provider.maxIpsCount = 1;

  // oidc-provider compares client secrets in clear; Gatehouse keeps only a SHA-256 of each
  // secret (src/clients/secret.ts), plus the previous one during a rotation overlap.
  const ClientClass = provider.Client as any;
  ClientClass.prototype.compareClientSecret = async function compareClientSecret(
    this: { clientId: string; clientSecret?: string },
    actual: string,
  ) {
    if (secretMatches(actual, this.clientSecret)) return true;
    const record = await clients.get(this.clientId);
    if (record?.previousSecretHash && record.previousSecretExpiresAt && record.previousSecretExpiresAt > new Date()) {
      return secretMatches(actual, record.previousSecretHash);
    }
    return false;
  };
  // Every person's token carries `sid` (docs/architecture.md, "Tokens and claims"), so the agentserver can
  // tie a token to a sign-in session; oidc-provider includes it only for logout-aware clients.
  ClientClass.prototype.includeSid = () => true;
  extendOnRefresh(provider, deps.db, deps.session);
  const check = accessTokenChecker({ issuer: deps.issuer, audience, keys: () => deps.keys, db: deps.db, clients });
  introspectJwtAccessTokens(provider, { clients, check });
  allowFormPostToRedirectUri(provider);
  // Always registered: every authenticating client's metadata names the grant (src/clients/client-cache.ts).
  registerTokenExchange(provider, {
    issuer: deps.issuer,
    audience,
    accessTokenAlg: deps.accessTokenAlg,
    keys: deps.keys,
    db: deps.db,
    clients,
    limitTokenRequest: deps.limitTokenRequest,
    audit: deps.audit,
    ...(deps.delegation ?? { maxTtl: 300, maxDepth: 3 }),
  });
  return provider;
}

// Service clients (client credentials) and browser applications (code + PKCE), as docs/architecture.md
// ("Service clients", "Command line") describes them.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { isPermission, isRole, isServicePermission, PERMISSION_SHAPE } from '../authz/model.ts';
import { bumpVersion } from '../db/change-feed.ts';
import { inTransaction } from '../db/transaction.ts';
import type { Db } from '../db/handle.ts';
import type { ClientRow } from '../db/schema.ts';
import { GatehouseError, parseOrThrow } from '../errors.ts';
import * as repo from './clients.repository.ts';
import { hashClientSecret, newClientId, newClientSecret } from './secret.ts';
import { DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE, MAX_CLIENT_TOKEN_REQUESTS_PER_MINUTE } from './rate-limit.ts';

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'none'] as const;
/** The methods where Gatehouse issues a secret (RFC 6749 §2.3.1: in the Authorization header, or in the form body). */
export const SECRET_AUTH_METHODS: readonly AuthMethod[] = ['client_secret_basic', 'client_secret_post'];
export type AuthMethod = (typeof AUTH_METHODS)[number];

/** How long a rotated-out secret keeps working, so a fleet can roll over without downtime. */
export const DEFAULT_SECRET_OVERLAP_SECONDS = 24 * 3600;

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const cidr = z
  .string()
  .max(64)
  .refine((v) => {
    try {
      ipaddr.parseCIDR(v);
      return true;
    } catch {
      return ipaddr.isValid(v);
    }
  }, 'must be an IP network in CIDR notation, for example 10.0.0.0/8');

const redirectUri = z
  .string()
  .max(2000)
  .refine((v) => {
    try {
      const u = new URL(v);
      // Exact-match redirect URIs (RFC 9700 §2.1): no fragment, https except on loopback.
      return !u.hash && (u.protocol === 'https:' || (u.protocol === 'http:' && LOCAL_HOSTS.has(u.hostname)));
    } catch {
      return false;
    }
  }, 'must be an absolute https URL without a fragment (http only for localhost)');

/** RFC 8628's grant type, registered as `device_code` (`clients create --grant device_code`). */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// Back-Channel Logout 1.0 §2.2: an absolute URL without a fragment. http and private or loopback
// hosts are allowed: owners register these, and the agentserver usually sits on a private network.
const logoutUri = z
  .string()
  .max(2000)
  .refine((v) => {
    try {
      const u = new URL(v);
      return !u.hash && (u.protocol === 'https:' || u.protocol === 'http:') && !u.username && !u.password;
    } catch {
      return false;
    }
  }, 'must be an absolute http(s) URL without a fragment or credentials');

/** The name shown on the sign-in page and in the audit log, for a client or an agent. */
export const displayName = z
  .string()
  .trim()
  .min(1, 'name is required')
  .max(100, 'name must be at most 100 characters')
  .regex(/^[^\p{Cc}]+$/u, 'name must not contain control characters');

/** A client's or agent's public keys for private_key_jwt (never a private or symmetric key). */
export const publicJwks = z.object({
  keys: z
    .array(z.record(z.string(), z.unknown()))
    .min(1)
    .max(10)
    .refine((keys) => keys.every((k) => typeof k.kty === 'string' && k.d === undefined && k.k === undefined), 'must hold public keys only'),
});

const createSchema = z
  .object({
    name: displayName,
    grants: z
      .array(z.enum(['client_credentials', 'authorization_code', 'refresh_token', 'device_code', 'token_exchange']))
      .min(1, 'at least one grant is required'),
    auth: z.enum(AUTH_METHODS).default('client_secret_basic'),
    roles: z.array(z.string().refine(isRole, 'is not a role (viewer, operator, admin, owner, auditor)')).max(5).default([]),
    permissions: z
      .array(z.string().refine(isPermission, `must look like ${PERMISSION_SHAPE}`))
      .max(100)
      .default([]),
    allowedCidrs: z.array(cidr).max(50).default([]),
    rateLimit: z
      .number()
      .int('must be a whole number of token requests a minute')
      .min(1, 'must be at least 1 token request a minute')
      .max(MAX_CLIENT_TOKEN_REQUESTS_PER_MINUTE, `must be at most ${MAX_CLIENT_TOKEN_REQUESTS_PER_MINUTE} token requests a minute`)
      .optional(),
    redirectUris: z.array(redirectUri).max(20).default([]),
    postLogoutRedirectUris: z.array(redirectUri).max(20).default([]),
    backchannelLogoutUri: logoutUri.optional(),
    jwks: publicJwks.optional(),
    tlsSubjectDn: z.string().max(500).optional(),
    introspect: z.boolean().default(false),
    /** Every access token must be DPoP-bound (RFC 9449 §5.2 `dpop_bound_access_tokens`). */
    requireDpop: z.boolean().default(false),
    /** Access tokens bound to the client certificate (RFC 8705 §3, `cnf.x5t#S256`); tls_client_auth only. */
    certificateBound: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    const service = v.grants.includes('client_credentials');
    const browser = v.grants.includes('authorization_code');
    const device = v.grants.includes('device_code');
    if (service && (browser || device))
      ctx.addIssue({
        code: 'custom',
        path: ['grants'],
        message:
          'a client is either a service (client_credentials) or an application people sign in to (authorization_code, device_code), not both',
      });
    if (v.grants.includes('refresh_token') && !browser && !device)
      ctx.addIssue({ code: 'custom', path: ['grants'], message: 'refresh_token goes with authorization_code or device_code' });
    if (service && v.backchannelLogoutUri)
      ctx.addIssue({
        code: 'custom',
        path: ['backchannelLogoutUri'],
        message: 'a service client has no sign-in sessions to be told about',
      });
    // RFC 8693 (src/oidc/token-exchange.ts): the agentserver's back end, a service that authenticates.
    if (v.grants.includes('token_exchange') && !service)
      ctx.addIssue({ code: 'custom', path: ['grants'], message: 'token_exchange is for service clients: it goes with client_credentials' });
    if (browser && v.redirectUris.length === 0)
      ctx.addIssue({ code: 'custom', path: ['redirectUris'], message: 'a browser application needs at least one redirect URI' });
    if (service && v.redirectUris.length > 0)
      ctx.addIssue({ code: 'custom', path: ['redirectUris'], message: 'a service client has no redirect URIs' });
    if (!service && v.permissions.some(isServicePermission))
      ctx.addIssue({ code: 'custom', path: ['permissions'], message: 'audit:append is for service clients (client_credentials)' });
    if (service && v.auth === 'none') ctx.addIssue({ code: 'custom', path: ['auth'], message: 'a service client must authenticate' });
    if (v.introspect && v.auth === 'none')
      ctx.addIssue({ code: 'custom', path: ['introspect'], message: 'a client that introspects tokens must authenticate' });
    if (v.auth === 'private_key_jwt' && !v.jwks)
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'private_key_jwt needs the client public keys (a JWKS)' });
    if (v.certificateBound && v.auth !== 'tls_client_auth')
      ctx.addIssue({
        code: 'custom',
        path: ['certificateBound'],
        message: 'certificate-bound tokens need tls_client_auth (the certificate Gatehouse checks is the one it binds)',
      });
    if (v.auth === 'tls_client_auth' && !v.tlsSubjectDn)
      ctx.addIssue({ code: 'custom', path: ['tlsSubjectDn'], message: 'tls_client_auth needs the certificate subject DN' });
  });

export type CreateClientInput = z.input<typeof createSchema>;

export interface CreatedClient {
  client_id: string;
  /** Shown once; Gatehouse keeps only its hash. Absent for public clients and key-based auth. */
  client_secret?: string;
}

export async function createClient(db: Db, input: CreateClientInput): Promise<CreatedClient> {
  const v = parseOrThrow(createSchema, input);
  const kind = v.grants.includes('client_credentials') ? 'service' : 'browser';
  const clientId = newClientId(kind);
  const secret = SECRET_AUTH_METHODS.includes(v.auth) ? newClientSecret() : undefined;
  const metadata: Record<string, unknown> = {
    client_name: v.name,
    grant_types: [...new Set(v.grants)].map((g) => (g === 'device_code' ? DEVICE_CODE_GRANT : g)),
    response_types: v.grants.includes('authorization_code') ? ['code'] : [],
    redirect_uris: v.redirectUris,
    token_endpoint_auth_method: v.auth,
  };
  if (v.postLogoutRedirectUris.length) metadata.post_logout_redirect_uris = v.postLogoutRedirectUris;
  if (v.backchannelLogoutUri) {
    // Every logout token carries the session's sid (src/oidc/backchannel-logout.ts).
    metadata.backchannel_logout_uri = v.backchannelLogoutUri;
    metadata.backchannel_logout_session_required = true;
  }
  if (v.jwks) metadata.jwks = v.jwks;
  if (v.tlsSubjectDn) metadata.tls_client_auth_subject_dn = v.tlsSubjectDn;
  // Sender constraints (docs/architecture.md, "Sender-constrained tokens"): oidc-provider reads these.
  if (v.requireDpop) metadata.dpop_bound_access_tokens = true;
  if (v.certificateBound) metadata.tls_client_certificate_bound_access_tokens = true;
  await inTransaction(db, async (trx) => {
    await repo.insertClient(trx, {
      client_id: clientId,
      name: v.name,
      kind,
      metadata: JSON.stringify(metadata),
      secret_hash: secret ? hashClientSecret(secret) : null,
      roles: JSON.stringify([...new Set(v.roles)]),
      permissions: JSON.stringify([...new Set(v.permissions)]),
      allowed_cidrs: JSON.stringify(v.allowedCidrs),
      rate_limit: v.rateLimit ?? null,
      introspect: v.introspect,
    });
    await bumpVersion(trx, 'clients');
  });
  return secret ? { client_id: clientId, client_secret: secret } : { client_id: clientId };
}

export interface ClientSummary {
  client_id: string;
  name: string;
  kind: string;
  grants: string[];
  auth: string;
  roles: string[];
  permissions: string[];
  allowed_cidrs: string[];
  /** Token requests a minute at /token. */
  rate_limit: number;
  redirect_uris: string[];
  introspect: boolean;
  /** Every token must be DPoP-bound (`--require-dpop`). */
  require_dpop: boolean;
  /** Tokens bound to the client certificate (`--certificate-bound`). */
  certificate_bound: boolean;
  created_at: string;
  updated_at: string;
}

export function summarize(row: ClientRow): ClientSummary {
  const m = row.metadata as {
    grant_types?: string[];
    token_endpoint_auth_method?: string;
    redirect_uris?: string[];
    dpop_bound_access_tokens?: boolean;
    tls_client_certificate_bound_access_tokens?: boolean;
  };
  return {
    client_id: row.client_id,
    name: row.name,
    kind: row.kind,
    grants: (m.grant_types ?? []).map((g) => (g === DEVICE_CODE_GRANT ? 'device_code' : g)),
    auth: m.token_endpoint_auth_method ?? 'client_secret_basic',
    roles: row.roles,
    permissions: row.permissions,
    allowed_cidrs: row.allowed_cidrs,
    rate_limit: row.rate_limit ?? DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE,
    redirect_uris: m.redirect_uris ?? [],
    introspect: row.introspect === true,
    require_dpop: m.dpop_bound_access_tokens === true,
    certificate_bound: m.tls_client_certificate_bound_access_tokens === true,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

export async function listClients(db: Db): Promise<ClientSummary[]> {
  return (await repo.listClients(db)).map(summarize);
}

async function mustFind(db: Db, clientId: string): Promise<ClientRow> {
  const row = typeof clientId === 'string' && clientId.length <= 200 ? await repo.findClient(db, clientId) : undefined;
  if (!row) throw new GatehouseError('NOT_FOUND', `no client with id ${JSON.stringify(String(clientId).slice(0, 200))}`);
  return row;
}

/**
 * A new secret, shown once. The old one keeps working for `overlapSeconds` (0: revoked now),
 * so services can be rolled over one at a time.
 */
export async function rotateClientSecret(
  db: Db,
  clientId: string,
  overlapSeconds = DEFAULT_SECRET_OVERLAP_SECONDS,
): Promise<{ client_id: string; client_secret: string; previous_secret_valid_until: string | null }> {
  const row = await mustFind(db, clientId);
  if (!row.secret_hash) throw new GatehouseError('VALIDATION', `client ${clientId} does not authenticate with a secret`);
  const secret = newClientSecret();
  const until = overlapSeconds > 0 ? new Date(Date.now() + overlapSeconds * 1000) : null;
  await inTransaction(db, async (trx) => {
    await repo.updateClient(trx, clientId, {
      secret_hash: hashClientSecret(secret),
      previous_secret_hash: until ? row.secret_hash : null,
      previous_secret_expires_at: until,
    });
    await bumpVersion(trx, 'clients');
  });
  return { client_id: clientId, client_secret: secret, previous_secret_valid_until: until?.toISOString() ?? null };
}

export async function deleteClient(db: Db, clientId: string): Promise<void> {
  await mustFind(db, clientId);
  await inTransaction(db, async (trx) => {
    await repo.deleteClient(trx, clientId);
    await repo.deleteClientGrants(trx, clientId);
    await bumpVersion(trx, 'clients');
  });
}

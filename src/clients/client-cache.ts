// oidc-provider looks a client up through the adapter on every request. This cache answers from
// memory; every instance drops it when the `clients` version moves (src/db/change-feed.ts), so a
// deleted client or a rotated secret takes effect everywhere within one poll interval.
import type { ClientRow } from '../db/schema.ts';
import { findClient } from './clients.repository.ts';
import type { Db } from '../db/handle.ts';
import { DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE } from './rate-limit.ts';

export interface ClientRecord {
  clientId: string;
  kind: 'service' | 'browser' | 'agent';
  /** The metadata oidc-provider builds its Client from; `client_secret` holds the secret's hash. */
  metadata: Record<string, unknown>;
  previousSecretHash: string | null;
  previousSecretExpiresAt: Date | null;
  roles: string[];
  permissions: string[];
  allowedCidrs: string[];
  /** Token requests a minute at /token (the default when none was set). */
  rateLimit: number;
  /** Registered as a resource server (`clients create --introspect`). */
  introspect: boolean;
  /** Registered with `--grant token_exchange`: may exchange a person's token for an agent (src/oidc/token-exchange.ts). */
  tokenExchange: boolean;
  /** A disabled agent: oidc-provider does not find it (src/oidc/adapter.ts), a token exchange refuses it. */
  disabled: boolean;
}

/** RFC 8693 §2.1. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

const MAX_ENTRIES = 10_000;

export function toRecord(row: ClientRow): ClientRecord {
  const metadata: Record<string, unknown> = { ...row.metadata, client_id: row.client_id };
  // Gatehouse stores the grant as `token_exchange`. oidc-provider sees the RFC 8693 grant type on
  // every client, so that one without the grant reaches the handler and gets unauthorized_client
  // (RFC 6749 §5.2) rather than the library's generic invalid_request.
  // Public clients (no authentication) are left as they are: they can never exchange tokens.
  const grants = Array.isArray(row.metadata.grant_types) ? (row.metadata.grant_types as string[]) : ['authorization_code'];
  const authenticates = row.metadata.token_endpoint_auth_method !== 'none';
  metadata.grant_types = [...grants.filter((g) => g !== 'token_exchange'), ...(authenticates ? [TOKEN_EXCHANGE_GRANT] : [])];
  if (row.secret_hash) metadata.client_secret = row.secret_hash;
  return {
    clientId: row.client_id,
    kind: row.kind,
    metadata,
    previousSecretHash: row.previous_secret_hash,
    previousSecretExpiresAt: row.previous_secret_expires_at ? new Date(row.previous_secret_expires_at) : null,
    roles: row.roles,
    permissions: row.permissions,
    allowedCidrs: row.allowed_cidrs,
    rateLimit: row.rate_limit ?? DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE,
    introspect: row.introspect === true,
    tokenExchange: grants.includes('token_exchange'),
    disabled: row.disabled === true,
  };
}

export class ClientCache {
  #db: Db;
  // Misses are cached too (as null): a flood of unknown client ids must not become a flood of queries.
  #entries = new Map<string, Promise<ClientRecord | null>>();
  hits = 0;
  misses = 0;

  constructor(db: Db) {
    this.#db = db;
  }

  get(clientId: string): Promise<ClientRecord | null> {
    if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 200) return Promise.resolve(null);
    const cached = this.#entries.get(clientId);
    if (cached) {
      this.hits++;
      return cached;
    }
    this.misses++;
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
    const loading = findClient(this.#db, clientId).then((row) => (row ? toRecord(row) : null));
    this.#entries.set(clientId, loading);
    loading.catch(() => this.#entries.delete(clientId));
    return loading;
  }

  invalidate(): void {
    this.#entries.clear();
  }
}

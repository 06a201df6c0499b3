// oidc-provider looks a client up through the adapter on every request. This cache answers from
// memory; every instance drops it when the `clients` version moves (src/db/change-feed.ts), so a
// deleted client or a rotated secret takes effect everywhere within one poll interval.
import type { ClientRow } from '../db/schema.ts';
import { findClient } from './clients.repository.ts';
import type { Db } from '../db/handle.ts';
import { DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE } from './rate-limit.ts';

export interface ClientRecord {
  clientId: string;
  kind: 'service' | 'browser';
  /** The metadata oidc-provider builds its Client from; `client_secret` holds the secret's hash. */
  metadata: Record<string, unknown>;
  previousSecretHash: string | null;
  previousSecretExpiresAt: Date | null;
  roles: string[];
  permissions: string[];
  allowedCidrs: string[];
  /** Token requests a minute at /token (the default when none was set). */
  rateLimit: number;
}

const MAX_ENTRIES = 10_000;

export function toRecord(row: ClientRow): ClientRecord {
  const metadata: Record<string, unknown> = { ...row.metadata, client_id: row.client_id };
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

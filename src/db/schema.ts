// The database as Kysely sees it, written from migrations/. Column types follow Kysely's
// conventions: Generated<> for defaults, ColumnType<> where reads and writes differ, T | null.
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export interface OidcPayloadTable {
  model: string;
  id: string;
  payload: Json<Record<string, unknown>>;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: Timestamp | null;
  consumed_at: Timestamp | null;
}

export type KeyState = 'next' | 'current' | 'retired';

export interface SigningKeyTable {
  kid: string;
  alg: string;
  state: KeyState;
  public_jwk: Json<Record<string, unknown>>;
  /** AES-256-GCM under the master key (src/crypto/seal.ts); never stored in clear. */
  private_jwk_sealed: string;
  created_at: GeneratedTimestamp;
  activated_at: Timestamp | null;
  retired_at: Timestamp | null;
  /** A retired key stays in the JWKS until every token it signed has expired. */
  publish_until: Timestamp | null;
}

export type ClientKind = 'service' | 'browser';

export interface ClientTable {
  client_id: string;
  name: string;
  kind: ClientKind;
  /** oidc-provider client metadata, without any secret. */
  metadata: Json<Record<string, unknown>>;
  /** SHA-256 of the 256-bit random secret: a fast hash is sound for a secret nobody chose. */
  secret_hash: string | null;
  previous_secret_hash: string | null;
  previous_secret_expires_at: Timestamp | null;
  roles: Json<string[]>;
  permissions: Json<string[]>;
  allowed_cidrs: Json<string[]>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** Bumped in the same transaction as a change, polled by every instance to drop caches. */
export interface ChangeVersionTable {
  topic: string;
  version: Generated<string>;
}

export interface Database {
  oidc_payload: OidcPayloadTable;
  signing_key: SigningKeyTable;
  client: ClientTable;
  change_version: ChangeVersionTable;
}

export type SigningKeyRow = Selectable<SigningKeyTable>;
export type NewSigningKey = Insertable<SigningKeyTable>;
export type ClientRow = Selectable<ClientTable>;
export type NewClient = Insertable<ClientTable>;
export type ClientUpdate = Updateable<ClientTable>;

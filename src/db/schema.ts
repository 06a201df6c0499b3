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

/** revoked: withdrawn as compromised; never published or used again, private part erased. */
export type KeyState = 'next' | 'current' | 'retired' | 'revoked';

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
  revoked_at: Timestamp | null;
}

export type ClientKind = 'service' | 'browser' | 'agent';

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
  /** Token requests a minute at /token; null: the default. */
  rate_limit: number | null;
  /** A resource server: may introspect tokens issued to other clients (RFC 7662). */
  introspect: Generated<boolean>;
  /** A disabled agent cannot authenticate nor act in a token exchange (migrations/2026-12-01T15-00_agents.ts). */
  disabled: Generated<boolean>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** Bumped in the same transaction as a change, polled by every instance to drop caches. */
export interface ChangeVersionTable {
  topic: string;
  version: Generated<string>;
}

export type AccountStatus = 'active' | 'disabled';

export interface AccountTable {
  id: string;
  email: string;
  role: string;
  permissions: Json<string[]>;
  status: AccountStatus;
  /** argon2id (src/accounts/password.ts); null for a passkey-only person. */
  password_hash: string | null;
  password_changed_at: Timestamp | null;
  sessions_valid_after: Timestamp | null;
  last_sign_in_at: Timestamp | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** 'reset' is the factor reset (the name it shipped with); see src/accounts/recovery.ts. */
export type InvitationPurposeColumn = 'enroll' | 'reset' | 'password_reset' | 'reenroll';

export interface InvitationTable {
  id: string;
  token_hash: string;
  email: string;
  role: string;
  permissions: Json<string[]>;
  purpose: ColumnType<InvitationPurposeColumn, InvitationPurposeColumn | undefined, InvitationPurposeColumn>;
  account_id: string | null;
  created_by: string | null;
  created_at: GeneratedTimestamp;
  proof_attempts: ColumnType<number, number | undefined, number>;
  expires_at: Timestamp;
  used_at: Timestamp | null;
}

export interface TotpCredentialTable {
  id: string;
  account_id: string;
  seed_sealed: string;
  confirmed: Generated<boolean>;
  last_used_step: ColumnType<string | null, number | string | null | undefined, number | string | null>;
  created_at: GeneratedTimestamp;
}

export interface WebauthnCredentialTable {
  id: string;
  account_id: string;
  public_key: string;
  counter: ColumnType<string, number | string | undefined, number | string>;
  transports: Json<string[]>;
  device_type: string;
  backed_up: boolean;
  name: string;
  created_at: GeneratedTimestamp;
  last_used_at: Timestamp | null;
}

export interface BackupCodeTable {
  account_id: string;
  code_hash: string;
  used_at: Timestamp | null;
  created_at: GeneratedTimestamp;
}

export interface WebauthnChallengeTable {
  id: string;
  ceremony: 'registration' | 'authentication';
  challenge: string;
  account_id: string | null;
  expires_at: Timestamp;
}

export interface LoginFlowTable {
  uid: string;
  account_id: string;
  amr: Json<string[]>;
  created_at: GeneratedTimestamp;
  expires_at: Timestamp;
}

export type AuditOutcome = 'success' | 'failure' | 'denied';

/** Append-only (a trigger refuses UPDATE, DELETE, TRUNCATE); written only by src/audit. */
export interface AuditEventTable {
  seq: ColumnType<string, number | string, never>;
  time: ColumnType<Date, Date | string, never>;
  actor: ColumnType<string, string, never>;
  ip: ColumnType<string | null, string | null, never>;
  action: ColumnType<string, string, never>;
  target: ColumnType<string | null, string | null, never>;
  outcome: ColumnType<AuditOutcome, AuditOutcome, never>;
  request_id: ColumnType<string | null, string | null, never>;
  /** Never a secret: src/audit refuses secret-like keys. */
  details: ColumnType<Record<string, unknown>, string, never>;
  prev_hash: ColumnType<string, string, never>;
  hash: ColumnType<string, string, never>;
  /** Ingested events only (POST /audit/events): the sending client's id; null for Gatehouse's own. */
  source: ColumnType<string | null, string | null | undefined, never>;
  /** Ingested events only: the producer's UUID, unique per source (its idempotency key). */
  event_id: ColumnType<string | null, string | null | undefined, never>;
  /** Ingested events only: when the producer says it happened (`time` is Gatehouse's clock). */
  producer_time: ColumnType<Date | null, Date | string | null | undefined, never>;
}

/** A signed {seq, hash, time} over the audit chain; append-only like the log. */
export interface AuditCheckpointTable {
  seq: ColumnType<string, number | string, never>;
  hash: ColumnType<string, string, never>;
  time: ColumnType<Date, Date | string, never>;
  kid: ColumnType<string, string, never>;
  jws: ColumnType<string, string, never>;
}

export interface EnrollmentTable {
  invitation_id: string;
  account_id: string;
  email: string;
  password_hash: string | null;
  totp_seed_sealed: string | null;
  expires_at: Timestamp;
  proven_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/**
 * rate-limiter-flexible's PostgreSQL store (src/signin/brute-force.ts), shared by every instance;
 * the library reads and writes it, Gatehouse only deletes expired rows (src/jobs/cleanup.ts).
 */
export interface RateLimitTable {
  key: string;
  points: ColumnType<number, number | undefined, number>;
  /** Epoch milliseconds (bigint: node-postgres reads it back as a string); null never expires. */
  expire: ColumnType<string | number | null, number | null | undefined, number | null>;
}

/** A logout token still to deliver (src/oidc/backchannel-logout.ts): one per ended session and client. */
export interface BackchannelLogoutTable {
  /** The logout token's jti. */
  id: string;
  client_id: string;
  sub: string;
  sid: string | null;
  reason: string;
  attempts: Generated<number>;
  next_attempt_at: GeneratedTimestamp;
  created_at: GeneratedTimestamp;
}

/** A signed-in admin console browser (src/admin/sessions.ts). */
export interface AdminSessionTable {
  /** SHA-256 of the cookie value: a copy of the table yields no usable session. */
  id: string;
  account_id: string;
  /** When the person last authenticated (the ID token's auth_time): changes need it recent. */
  auth_time: Timestamp;
  amr: Json<string[]>;
  acr: string | null;
  created_at: Timestamp;
  last_seen_at: Timestamp;
  expires_at: Timestamp;
}

/** The master key in force: its key-check value and the sealed backup-code key (src/keys/master-key.ts). */
export interface MasterKeyCheckTable {
  id: number;
  check_value: string;
  backup_code_key_sealed: string | null;
  rotated_at: Timestamp;
}

export interface Database {
  oidc_payload: OidcPayloadTable;
  signing_key: SigningKeyTable;
  client: ClientTable;
  change_version: ChangeVersionTable;
  account: AccountTable;
  invitation: InvitationTable;
  totp_credential: TotpCredentialTable;
  webauthn_credential: WebauthnCredentialTable;
  backup_code: BackupCodeTable;
  webauthn_challenge: WebauthnChallengeTable;
  login_flow: LoginFlowTable;
  enrollment: EnrollmentTable;
  rate_limit: RateLimitTable;
  audit_event: AuditEventTable;
  audit_checkpoint: AuditCheckpointTable;
  admin_session: AdminSessionTable;
  master_key_check: MasterKeyCheckTable;
  backchannel_logout: BackchannelLogoutTable;
}

export type AccountRow = Selectable<AccountTable>;
export type InvitationRow = Selectable<InvitationTable>;

export type SigningKeyRow = Selectable<SigningKeyTable>;
export type NewSigningKey = Insertable<SigningKeyTable>;
export type ClientRow = Selectable<ClientTable>;
export type NewClient = Insertable<ClientTable>;
export type ClientUpdate = Updateable<ClientTable>;

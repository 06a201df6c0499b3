// People, their factors and invitations. Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('account')
    .addColumn('id', 'text', (c) => c.primaryKey())
    // Stored lower-cased and NFC-normalized (src/accounts/email.ts): one person, one row.
    .addColumn('email', 'text', (c) => c.notNull().unique())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('viewer', 'operator', 'admin', 'owner', 'auditor')`))
    .addColumn('permissions', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'disabled')`))
    .addColumn('password_hash', 'text')
    .addColumn('password_changed_at', 'timestamptz')
    // Sessions and refresh tokens older than this are refused (password change, factor reset, "end all sessions").
    .addColumn('sessions_valid_after', 'timestamptz')
    .addColumn('last_sign_in_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('invitation')
    .addColumn('id', 'text', (c) => c.primaryKey())
    // SHA-256 of the 256-bit token in the link; the token itself is never stored.
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('permissions', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('purpose', 'text', (c) =>
      c
        .notNull()
        .defaultTo('enroll')
        .check(sql`purpose in ('enroll', 'reset')`),
    )
    .addColumn('account_id', 'text', (c) => c.references('account.id').onDelete('cascade'))
    .addColumn('created_by', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('invitation_email').on('invitation').columns(['email']).execute();

  await db.schema
    .createTable('totp_credential')
    .addColumn('account_id', 'text', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('id', 'text', (c) => c.primaryKey())
    // AES-256-GCM under the master key, bound to this row's id.
    .addColumn('seed_sealed', 'text', (c) => c.notNull())
    .addColumn('confirmed', 'boolean', (c) => c.notNull().defaultTo(false))
    // The last accepted time step: a code of this step or an earlier one is refused (RFC 6238 §5.2).
    .addColumn('last_used_step', 'bigint')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('totp_credential_account').on('totp_credential').columns(['account_id']).execute();

  await db.schema
    .createTable('webauthn_credential')
    .addColumn('id', 'text', (c) => c.primaryKey()) // credential id, base64url
    .addColumn('account_id', 'text', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('public_key', 'text', (c) => c.notNull()) // COSE key, base64url
    .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('transports', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('device_type', 'text', (c) => c.notNull())
    .addColumn('backed_up', 'boolean', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('webauthn_credential_account').on('webauthn_credential').columns(['account_id']).execute();

  await db.schema
    .createTable('backup_code')
    .addColumn('account_id', 'text', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('code_hash', 'text', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('backup_code_pk', ['account_id', 'code_hash'])
    .execute();

  await db.schema
    .createTable('webauthn_challenge')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('ceremony', 'text', (c) => c.notNull().check(sql`ceremony in ('registration', 'authentication')`))
    .addColumn('challenge', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();

  // Sessions listed per person (/account) without scanning every payload.
  await sql`create index oidc_payload_session_account on oidc_payload ((payload->>'accountId')) where model = 'Session'`.execute(db);
  await db
    .insertInto('change_version')
    .values([{ topic: 'accounts' }])
    .onConflict((oc) => oc.doNothing())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists oidc_payload_session_account`.execute(db);
  for (const t of ['webauthn_challenge', 'backup_code', 'webauthn_credential', 'totp_credential', 'invitation', 'account'])
    await db.schema.dropTable(t).execute();
}

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0, issue 10 §3): the outbox of logout
// tokens still to deliver, written in the same transaction as the session it announces ends, and
// an index for the device flow's user-code lookup (RFC 8628, issue 10 §2). Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('backchannel_logout')
    // The logout token's jti: one per (session, client), kept across retries.
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('sub', 'text', (c) => c.notNull())
    .addColumn('sid', 'text')
    // Why the session ended (signout, password_change, disabled, sessions_ended, factor_reset, session_ended, expired): logs only.
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('backchannel_logout_due').on('backchannel_logout').columns(['next_attempt_at']).execute();
  await db.schema
    .createIndex('oidc_payload_user_code')
    .on('oidc_payload')
    .columns(['user_code'])
    .where('user_code', 'is not', null)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('oidc_payload_user_code').execute();
  await db.schema.dropTable('backchannel_logout').execute();
}

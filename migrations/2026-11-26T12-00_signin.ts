// Sign-in flows and brute-force counters. Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // A sign-in in progress, one per oidc-provider interaction (Ory Kratos's "flow"): who has
  // passed the first factor, with which method, and until when the rest must be done.
  await db.schema
    .createTable('login_flow')
    .addColumn('uid', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('amr', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  // An enrollment in progress, one per invitation: what the person chose so far. The account is
  // created only when the last step succeeds, in one transaction with the invitation's use.
  await db.schema
    .createTable('enrollment')
    .addColumn('invitation_id', 'text', (c) => c.primaryKey().references('invitation.id').onDelete('cascade'))
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('password_hash', 'text')
    .addColumn('totp_seed_sealed', 'text')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  // rate-limiter-flexible's PostgreSQL store: counters every instance shares.
  await sql`create table rate_limit (key varchar(255) primary key, points integer not null default 0, expire bigint)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rate_limit').execute();
  await db.schema.dropTable('enrollment').execute();
  await db.schema.dropTable('login_flow').execute();
}

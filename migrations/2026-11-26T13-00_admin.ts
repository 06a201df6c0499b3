// The admin console's own sign-in sessions. Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // One row per signed-in admin browser. The id is the SHA-256 of the cookie value, so a copy of
  // the table yields no usable session. auth_time and amr come from the verified ID token: they
  // decide whether a change needs a fresh sign-in (max_age).
  await db.schema
    .createTable('admin_session')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('auth_time', 'timestamptz', (c) => c.notNull())
    .addColumn('amr', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('acr', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('admin_session_account_id').on('admin_session').columns(['account_id']).execute();
  await db.schema.createIndex('admin_session_expires_at').on('admin_session').columns(['expires_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('admin_session').execute();
}

// Frozen in time: never edit a migration that has shipped; add a new one.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('oidc_payload')
    .addColumn('model', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('uid', 'text')
    .addColumn('user_code', 'text')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('consumed_at', 'timestamptz')
    .addPrimaryKeyConstraint('oidc_payload_pk', ['model', 'id'])
    .execute();
  await db.schema.createIndex('oidc_payload_grant_id').on('oidc_payload').columns(['grant_id']).where('grant_id', 'is not', null).execute();
  await db.schema.createIndex('oidc_payload_uid').on('oidc_payload').columns(['uid']).where('uid', 'is not', null).execute();
  await db.schema.createIndex('oidc_payload_expires_at').on('oidc_payload').columns(['expires_at']).execute();

  await db.schema
    .createTable('signing_key')
    .addColumn('kid', 'text', (c) => c.primaryKey())
    .addColumn('alg', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('next', 'current', 'retired')`))
    .addColumn('public_jwk', 'jsonb', (c) => c.notNull())
    .addColumn('private_jwk_sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('activated_at', 'timestamptz')
    .addColumn('retired_at', 'timestamptz')
    .addColumn('publish_until', 'timestamptz')
    .execute();
  // At most one current and one next key per algorithm, whatever two instances do at once.
  await sql`create unique index signing_key_one_current on signing_key (alg) where state = 'current'`.execute(db);
  await sql`create unique index signing_key_one_next on signing_key (alg) where state = 'next'`.execute(db);

  await db.schema
    .createTable('client')
    .addColumn('client_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('service', 'browser')`))
    .addColumn('metadata', 'jsonb', (c) => c.notNull())
    .addColumn('secret_hash', 'text')
    .addColumn('previous_secret_hash', 'text')
    .addColumn('previous_secret_expires_at', 'timestamptz')
    .addColumn('roles', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('permissions', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('allowed_cidrs', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('client_name').on('client').columns(['name']).execute();

  await db.schema
    .createTable('change_version')
    .addColumn('topic', 'text', (c) => c.primaryKey())
    .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  await db
    .insertInto('change_version')
    .values([{ topic: 'clients' }, { topic: 'keys' }])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['change_version', 'client', 'signing_key', 'oidc_payload']) await db.schema.dropTable(t).execute();
}

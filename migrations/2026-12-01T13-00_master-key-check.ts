// One row that names the master key in force (docs/architecture.md, "Secrets at rest"): a key-check
// value (an HMAC of a fixed string under a key derived from the master key, so it reveals nothing
// of the key), written by `gatehouse master-key rotate`; and the backup-code HMAC key, sealed under
// the master key once a rotation has moved it off the HKDF derivation (codes already issued must
// keep verifying, and they cannot be re-hashed without the codes themselves).
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('master_key_check')
    .addColumn('id', 'smallint', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('check_value', 'text', (c) => c.notNull())
    .addColumn('backup_code_key_sealed', 'text')
    .addColumn('rotated_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('master_key_check').execute();
}

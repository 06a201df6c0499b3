// A signing key can be revoked (issue 7 point 4): a compromised key leaves the JWKS at once and
// never signs again. Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table signing_key drop constraint signing_key_state_check`.execute(db);
  await sql`alter table signing_key add constraint signing_key_state_check check (state in ('next', 'current', 'retired', 'revoked'))`.execute(
    db,
  );
  await db.schema.alterTable('signing_key').addColumn('revoked_at', 'timestamptz').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.deleteFrom('signing_key').where('state', '=', 'revoked').execute();
  await db.schema.alterTable('signing_key').dropColumn('revoked_at').execute();
  await sql`alter table signing_key drop constraint signing_key_state_check`.execute(db);
  await sql`alter table signing_key add constraint signing_key_state_check check (state in ('next', 'current', 'retired'))`.execute(db);
}

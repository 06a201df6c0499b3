// Recovery links (issue 7 point 3): three kinds beside the enrollment invitation, and the proof a
// recovery link asks for before it changes anything. Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // 'reset' (already shipped) is the factor reset; 'password_reset' and 'reenroll' are new.
  await sql`alter table invitation drop constraint invitation_purpose_check`.execute(db);
  await sql`alter table invitation add constraint invitation_purpose_check check (purpose in ('enroll', 'reset', 'password_reset', 'reenroll'))`.execute(
    db,
  );
  // How often the holder of a recovery link tried to prove what they still have (their password
  // for a factor reset, a second factor for a password reset): the link dies after a few, and the
  // count lives as long as the link, not as the enrollment row, so waiting does not reset it.
  await db.schema
    .alterTable('invitation')
    .addColumn('proof_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // When that proof succeeded, for the enrollment in progress.
  await db.schema.alterTable('enrollment').addColumn('proven_at', 'timestamptz').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('enrollment').dropColumn('proven_at').execute();
  await db.schema.alterTable('invitation').dropColumn('proof_attempts').execute();
  await sql`delete from invitation where purpose in ('password_reset', 'reenroll')`.execute(db);
  await sql`alter table invitation drop constraint invitation_purpose_check`.execute(db);
  await sql`alter table invitation add constraint invitation_purpose_check check (purpose in ('enroll', 'reset'))`.execute(db);
}

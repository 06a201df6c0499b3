// The audit log (docs/architecture.md, "Audit log"): a hash chain of events and signed checkpoints over it.
// Both tables are append-only, enforced by the database itself: a statement-level trigger refuses
// every UPDATE, DELETE and TRUNCATE, whatever code or console issues it. Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('audit_event')
    // Assigned by src/audit under an advisory lock: 1, 2, 3… with no gaps, so a missing row shows.
    .addColumn('seq', 'bigint', (c) => c.primaryKey().check(sql`seq >= 1`))
    .addColumn('time', 'timestamptz', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('ip', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text')
    .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('success', 'failure', 'denied')`))
    .addColumn('request_id', 'text')
    .addColumn('details', 'jsonb', (c) =>
      c
        .notNull()
        .defaultTo(sql`'{}'::jsonb`)
        .check(sql`jsonb_typeof(details) = 'object'`),
    )
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  // The admin UI lists newest first, filtered by one of these; (column, seq) serves both the
  // filter and the keyset pagination on seq.
  await db.schema.createIndex('audit_event_action_seq').on('audit_event').columns(['action', 'seq']).execute();
  await db.schema.createIndex('audit_event_actor_seq').on('audit_event').columns(['actor', 'seq']).execute();
  await db.schema
    .createIndex('audit_event_target_seq')
    .on('audit_event')
    .columns(['target', 'seq'])
    .where('target', 'is not', null)
    .execute();
  await db.schema.createIndex('audit_event_time').on('audit_event').columns(['time']).execute();

  await db.schema
    .createTable('audit_checkpoint')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('time', 'timestamptz', (c) => c.notNull())
    .addColumn('kid', 'text', (c) => c.notNull())
    // Compact JWS over {seq, hash, time}; the columns beside it are copies for queries.
    .addColumn('jws', 'text', (c) => c.notNull())
    .execute();

  await sql`
    create function audit_refuse_change() returns trigger language plpgsql as $$
    begin
      raise exception '% is append-only: % refused', tg_table_name, tg_op
        using errcode = 'insufficient_privilege';
    end
    $$`.execute(db);
  // Statement level, so that even a statement touching no row is refused, and TRUNCATE (which
  // fires no row trigger) is covered.
  for (const table of ['audit_event', 'audit_checkpoint']) {
    await sql`
      create trigger ${sql.raw(`${table}_append_only`)}
      before update or delete or truncate on ${sql.table(table)}
      for each statement execute function audit_refuse_change()`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_checkpoint').execute();
  await db.schema.dropTable('audit_event').execute();
  await sql`drop function audit_refuse_change()`.execute(db);
}

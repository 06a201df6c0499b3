// Events appended by other services through POST /audit/events (docs/architecture.md, "Audit
// ingestion"): they join the same chain, marked with the client that sent them. Gatehouse's own
// events keep the three columns null, and their hash covers exactly what it covered before
// (src/audit/canonical.ts). Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('audit_event')
    // The client id of the service that sent the event (the token's sub); null for Gatehouse's own.
    .addColumn('source', 'text')
    // The producer's UUID for the event: its idempotency key, unique per source.
    .addColumn('event_id', 'text')
    // When the producer says the event happened; `time` stays Gatehouse's clock at append.
    .addColumn('producer_time', 'timestamptz')
    .execute();
  await sql`alter table audit_event add constraint audit_event_ingested_whole
    check ((source is null and event_id is null and producer_time is null)
        or (source is not null and event_id is not null and producer_time is not null))`.execute(db);
  // A retried batch never appends an event twice, whatever instance serves the retry.
  await db.schema
    .createIndex('audit_event_source_event_id')
    .on('audit_event')
    .columns(['source', 'event_id'])
    .unique()
    .where('source', 'is not', null)
    .execute();
  // The console's and the CLI's --source filter, newest first with keyset pages on seq.
  await db.schema
    .createIndex('audit_event_source_seq')
    .on('audit_event')
    .columns(['source', 'seq'])
    .where('source', 'is not', null)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('audit_event_source_seq').execute();
  await db.schema.dropIndex('audit_event_source_event_id').execute();
  await sql`alter table audit_event drop constraint audit_event_ingested_whole`.execute(db);
  await db.schema.alterTable('audit_event').dropColumn('producer_time').dropColumn('event_id').dropColumn('source').execute();
}

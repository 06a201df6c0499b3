// Agents (issue 9): principals with their own credentials, stored as clients of kind 'agent'
// (client authentication, secret rotation, the client cache and the token budget come for free).
// Their `roles` column holds the --max-role ceiling, `permissions` the permission ceiling; neither
// is ever a grant by itself (docs/architecture.md, "Agents and delegation"). A disabled client
// (only agents are disabled today) cannot authenticate and cannot act in a token exchange.
// Frozen once shipped.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table client drop constraint if exists client_kind_check`.execute(db);
  await sql`alter table client add constraint client_kind_check check (kind in ('service', 'browser', 'agent'))`.execute(db);
  await db.schema
    .alterTable('client')
    .addColumn('disabled', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('client').dropColumn('disabled').execute();
  await sql`delete from client where kind = 'agent'`.execute(db);
  await sql`alter table client drop constraint if exists client_kind_check`.execute(db);
  await sql`alter table client add constraint client_kind_check check (kind in ('service', 'browser'))`.execute(db);
}

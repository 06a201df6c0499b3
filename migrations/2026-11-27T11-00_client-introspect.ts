// Clients registered as resource servers may introspect any token (RFC 7662 §4: the endpoint must
// be protected, and a client must not learn about other clients' tokens). Frozen once shipped.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('client')
    .addColumn('introspect', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('client').dropColumn('introspect').execute();
}

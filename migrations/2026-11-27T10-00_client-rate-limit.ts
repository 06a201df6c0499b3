// A service's own token-request budget (issue 7 §7). Frozen once shipped.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Token requests a minute at /token; null means the default (src/http/rate-limits.ts).
  await db.schema
    .alterTable('client')
    .addColumn('rate_limit', 'integer', (c) => c.check(sql`rate_limit > 0`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('client').dropColumn('rate_limit').execute();
}

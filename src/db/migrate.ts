// Migrations run exactly once however many instances start at once: on PostgreSQL, all pending
// migrations run in one transaction that first takes a transaction-scoped advisory lock
// (pg_advisory_xact_lock), released by its commit or rollback.
//
// Kysely's Migrator would take a session-level lock (pg_advisory_lock … pg_advisory_unlock) on a
// connection and open the transaction after it. Behind a transaction pooler (PgBouncer,
// pool_mode=transaction; README, "Production topology") the lock, the transaction and the unlock
// may each run on a different server session: the unlock misses, the lock stays held by a pooled
// session, and the next instance's migration waits on it until a timeout. So the Migrator is given
// the transaction, and its own lock calls are replaced by the one taken here. The key is Kysely's
// own, so an older instance that still takes Kysely's lock waits for this one, and the reverse.
import { Kysely, PostgresAdapter, PostgresDialect, sql, type Transaction } from 'kysely';
import { Migrator, type MigrationResultSet } from 'kysely/migration';
import { migrations } from '../../migrations/index.ts';
import type { Connection } from './connect.ts';
import { MigrationError } from '../errors.ts';

/** Kysely's migration lock key (kysely/dist/dialect/postgres/postgres-adapter.js). */
const MIGRATION_LOCK_ID = BigInt('3853314791062309107');

/** The caller's transaction already holds the lock; nothing to take or give back. */
class HeldLockAdapter extends PostgresAdapter {
  override async acquireMigrationLock(): Promise<void> {}
  override async releaseMigrationLock(): Promise<void> {}
}

class MigrationDialect extends PostgresDialect {
  override createAdapter() {
    return new HeldLockAdapter();
  }
}

const provider = { getMigrations: async () => migrations };

export async function migrateToLatest(db: Connection): Promise<string[]> {
  if (!db.pool) {
    // PGlite: one connection, one process (the data directory lock); Kysely's lock is a no-op there.
    return applied(await new Migrator({ db: db.kysely, provider }).migrateToLatest());
  }
  // Not destroyed afterwards: it borrows the connection's pool, which its owner closes.
  const kysely = new Kysely<unknown>({ dialect: new MigrationDialect({ pool: db.pool }) });
  return kysely.transaction().execute(async (trx: Transaction<unknown>) => {
    await sql`select pg_advisory_xact_lock(${sql.lit(MIGRATION_LOCK_ID)})`.execute(trx);
    // A failure throws, and the transaction rolls back every migration of this run with its lock.
    return applied(await new Migrator({ db: trx, provider }).migrateToLatest());
  });
}

function applied({ error, results }: MigrationResultSet): string[] {
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    throw new MigrationError(
      `migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`.replace('  ', ' '),
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

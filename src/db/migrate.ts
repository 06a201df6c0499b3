// Kysely's Migrator takes a lock (pg_advisory_xact_lock on PostgreSQL), so two instances that
// start at once run each migration exactly once.
import { Migrator } from 'kysely/migration';
import { migrations } from '../../migrations/index.ts';
import type { Connection } from './connect.ts';
import { MigrationError } from '../errors.ts';

export async function migrateToLatest(db: Connection): Promise<string[]> {
  const migrator = new Migrator({ db: db.kysely, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    throw new MigrationError(
      `migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`.replace('  ', ' '),
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

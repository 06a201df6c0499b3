// Migrations through PgBouncer in transaction pooling mode (README, "Production topology"):
// instances that start at once, while other sessions keep the pooler's server connections busy,
// each migrate without waiting on a lock nobody holds, and no lock stays behind in a pooled
// session. (Kysely's own session-level lock did both: its lock, transaction and unlock ran on
// different server sessions.)
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.ts';
import { startPgBouncer, type PgBouncer } from '../helpers/topology.ts';

describe('migrations behind a transaction pooler', () => {
  let pg: PrivatePostgres;
  let bouncer: PgBouncer;
  beforeAll(async () => {
    pg = await createPrivatePostgres();
    bouncer = await startPgBouncer(pg.port);
  }, 60_000);
  afterAll(async () => {
    await bouncer?.stop();
    await pg?.destroy();
  });

  it('run once from three instances at once, and leave no advisory lock held', async () => {
    const busy = await openDatabase({ databaseUrl: bouncer.url, dataDir: '', poolSize: 6 });
    let going = true;
    const traffic = Array.from({ length: 6 }, async () => {
      while (going) await sql`select pg_sleep(0.005)`.execute(busy.kysely);
    });
    const direct = await openDatabase({ databaseUrl: pg.url, dataDir: '' });
    try {
      for (let round = 0; round < 3; round++) {
        const instances = await Promise.all([1, 2, 3].map(() => openDatabase({ databaseUrl: bouncer.url, dataDir: '', poolSize: 1 })));
        try {
          const applied = await Promise.all(instances.map((c) => migrateToLatest(c)));
          // Every migration ran exactly once, in the first round.
          const names = applied.flat();
          expect(new Set(names).size).toBe(names.length);
          if (round > 0) expect(names).toEqual([]);
        } finally {
          for (const c of instances) await c.close();
        }
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_locks where locktype = 'advisory'`.execute(
          direct.kysely,
        );
        expect(rows[0]!.n).toBe(0);
      }
    } finally {
      going = false;
      await Promise.all(traffic);
      await busy.close();
      await direct.close();
    }
  });
});

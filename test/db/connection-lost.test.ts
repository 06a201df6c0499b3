// A connection cut while it is checked out of the pool (inside a transaction, between two
// statements: a pooler's idle_transaction_timeout, a PgBouncer or PostgreSQL restart) fails that
// transaction, and the process goes on (README, "Production topology"). Unheard, pg's 'error'
// event on the client would crash the process.
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connect.ts';
import { createPgDatabase } from '../helpers/db.ts';

describe('a database connection cut inside a transaction', () => {
  const drops: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const drop of drops) await drop();
  });

  it('fails the transaction, is reported, and the pool serves the next query on a new connection', async () => {
    const pgdb = await createPgDatabase();
    drops.push(pgdb.drop);
    const lost: string[] = [];
    const db = await openDatabase({ databaseUrl: pgdb.url, dataDir: '', bounded: true, onIdleError: (err) => lost.push(err.message) });
    const admin = await openDatabase({ databaseUrl: pgdb.url, dataDir: '' });
    try {
      const outcome = await db.kysely
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(admin.kysely);
          // The client hears the connection end while no query of its own runs.
          for (let i = 0; i < 100 && lost.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
          await sql`select 1`.execute(trx);
          return 'committed';
        })
        .catch((err: Error) => `failed: ${err.message}`);
      expect(outcome).toMatch(/^failed: /);
      expect(lost.length).toBeGreaterThan(0);
      const { rows } = await sql<{ ok: number }>`select 1 as ok`.execute(db.kysely);
      expect(rows[0]!.ok).toBe(1);
    } finally {
      await admin.close();
      await db.close();
    }
  });
});

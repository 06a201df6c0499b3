// Real databases for tests: a fresh PostgreSQL database per call (127.0.0.1:5432, user postgres,
// trust auth), or a fresh PGlite restored from a migrated template (about 1 s instead of 5).
import crypto from 'node:crypto';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { fromPGlite, openDatabase, type Connection } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';

export type Backend = 'postgres' | 'pglite';
export const BACKENDS: Backend[] = ['postgres', 'pglite'];

export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDb {
  db: Connection;
  /** For PostgreSQL: the URL of this test's own database (CLI children use it). */
  url: string | null;
  drop(): Promise<void>;
}

export async function createPgDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `gatehouse_test_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    drop: async () => {
      const a = new pg.Client({ connectionString: PG_ADMIN_URL });
      await a.connect();
      // A closed pool's sockets may still be closing: let them go before forcing the rest out,
      // or pg raises an unhandled "terminating connection" error in the pool being closed.
      for (let i = 0; i < 40; i++) {
        const { rows } = await a.query('select count(*)::int as n from pg_stat_activity where datname = $1', [name]);
        if (rows[0].n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

let template: Promise<File | Blob> | null = null;

async function pgliteTemplate(): Promise<File | Blob> {
  template ??= (async () => {
    const pglite = await PGlite.create();
    const db = fromPGlite(pglite);
    await migrateToLatest(db);
    const dump = await pglite.dumpDataDir('none');
    await db.close();
    return dump;
  })();
  return template;
}

export async function freshPglite(): Promise<Connection> {
  const pglite = await PGlite.create({ loadDataDir: await pgliteTemplate() });
  return fromPGlite(pglite);
}

export async function freshDb(backend: Backend): Promise<TestDb> {
  if (backend === 'pglite') {
    const db = await freshPglite();
    return { db, url: null, drop: () => db.close() };
  }
  const { url, drop } = await createPgDatabase();
  const db = await openDatabase({ databaseUrl: url, dataDir: '' });
  await migrateToLatest(db);
  return {
    db,
    url,
    drop: async () => {
      await db.close();
      await drop();
    },
  };
}

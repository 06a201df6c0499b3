// One code path, two dialects: PostgreSQL through pg when DATABASE_URL is set, PGlite in-process
// in the data directory otherwise (the embedded default: nothing to install).
import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';
import { acquireDataDirLock } from './data-dir-lock.ts';
import { DatabaseUnavailableError } from '../errors.ts';

export type Dialect = 'postgres' | 'pglite';

export interface Connection {
  kysely: Kysely<Database>;
  dialect: Dialect;
  /** The pg pool (PostgreSQL only): for libraries that speak to it directly (rate limiting). */
  pool?: pg.Pool;
  close(): Promise<void>;
}

// timestamptz and bigint come back as Date and string; jsonb already parsed by both drivers.
export async function openDatabase(opts: {
  databaseUrl: string | null;
  dataDir: string;
  poolSize?: number;
  onIdleError?: (err: Error) => void;
}): Promise<Connection> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 10 });
    // An idle connection killed by the server (a restart, a failover) must not crash the process:
    // the pool drops it and opens another on the next query.
    pool.on('error', (err) => opts.onIdleError?.(err));
    // Fail now, with the driver's reason, rather than at the first request.
    const client = await pool.connect().catch(async (err: Error) => {
      await pool.end().catch(() => {});
      throw new DatabaseUnavailableError(`cannot connect to DATABASE_URL: ${err.message}`);
    });
    client.release();
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { kysely, dialect: 'postgres', pool, close: once(() => kysely.destroy()) };
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const release = acquireDataDirLock(opts.dataDir);
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const pglite = await PGlite.create(path.join(opts.dataDir, 'pgdata'));
    return fromPGlite(pglite, async () => release());
  } catch (err) {
    release();
    throw err;
  }
}

/** Wrap an already-open PGlite (tests restore one from a dump). */
export function fromPGlite(pglite: import('@electric-sql/pglite').PGlite, onClose: () => Promise<void> = async () => {}): Connection {
  const kysely = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
  return {
    kysely,
    dialect: 'pglite',
    close: once(async () => {
      await kysely.destroy();
      if (!pglite.closed) await pglite.close();
      await onClose();
    }),
  };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | null = null;
  return () => (done ??= fn());
}

/** One round trip, for readiness checks. */
export async function ping(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}

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

/**
 * Limits for the server's pool, so that a database that stops answering (a host gone, a network
 * partition, a stuck lock) turns into a prompt 503 rather than a request that hangs: a connection
 * attempt, or a wait for a free one, gives up after 3 s; a query after 5 s, on the client side
 * (pg's query_timeout) and on the server side (statement_timeout, so PostgreSQL stops the work
 * too). TCP keepalive finds connections whose server vanished without a word.
 * Migrations are not run under these limits (src/app.ts opens a separate connection for them).
 */
export const BOUNDED = {
  connectionTimeoutMillis: 3000,
  query_timeout: 5000,
  statement_timeout: 5000,
  idle_in_transaction_session_timeout: 10_000,
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000,
} as const;

// timestamptz and bigint come back as Date and string; jsonb already parsed by both drivers.
export async function openDatabase(opts: {
  databaseUrl: string | null;
  dataDir: string;
  poolSize?: number;
  onIdleError?: (err: Error) => void;
  /** Bound every connect and query (the server's pool; docs/architecture.md, "Database outages"). */
  bounded?: boolean;
}): Promise<Connection> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 10, ...(opts.bounded ? BOUNDED : {}) });
    // An idle connection killed by the server (a restart, a failover) must not crash the process:
    // the pool drops it and opens another on the next query.
    pool.on('error', (err) => opts.onIdleError?.(err));
    // pg-pool listens for errors only on idle connections. One checked out (inside a transaction,
    // between two statements) that is cut (a pooler's idle_transaction_timeout, a PgBouncer or
    // PostgreSQL restart) emits 'error' on the client with nobody listening: the process would
    // crash. Heard here, the error fails that request's next query instead, and the pool drops
    // the connection when it is released (it is no longer queryable).
    pool.on('connect', (client) => client.on('error', (err) => opts.onIdleError?.(err)));
    // Fail now, with the driver's reason, rather than at the first request.
    const client = await pool.connect().catch(async (err: Error) => {
      await pool.end().catch(() => {});
      // PgBouncer refuses pg's startup parameters (statement_timeout, ...) unless told to ignore them.
      const hint = /unsupported startup parameter/.test(err.message)
        ? ' (behind PgBouncer, set ignore_startup_parameters = statement_timeout,idle_in_transaction_session_timeout; README, "Production topology")'
        : '';
      throw new DatabaseUnavailableError(`cannot connect to DATABASE_URL: ${err.message}${hint}`);
    });
    client.release();
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { kysely, dialect: 'postgres', pool, close: once(() => kysely.destroy()) };
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const release = acquireDataDirLock(opts.dataDir);
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    // PGlite's WebAssembly memory grows and never shrinks, and PostgreSQL's default 128 MB of shared
    // buffers was most of an idle instance's resident memory (issue 8 point 7: ~470 MiB idle after a
    // restart, ~300 MiB with 16 MB). Gatehouse's embedded data is small (people, clients, keys,
    // sessions, the audit log); the operating system's page cache still holds the files.
    const startParams = [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`];
    const pglite = await PGlite.create(path.join(opts.dataDir, 'pgdata'), { startParams });
    return fromPGlite(pglite, async () => release());
  } catch (err) {
    release();
    throw err;
  }
}

/** Shared buffers of the embedded database (see openDatabase). */
export const PGLITE_SHARED_BUFFERS = '16MB';

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

/** One round trip, for readiness checks; a database that does not answer within `timeoutMs` fails it. */
export async function ping(db: Kysely<Database>, timeoutMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('database ping timed out')), timeoutMs);
  });
  try {
    await Promise.race([sql`select 1`.execute(db), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

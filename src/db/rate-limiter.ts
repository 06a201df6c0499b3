// One way to build a rate-limit counter (rate-limiter-flexible): shared by every instance in the
// `rate_limit` table on PostgreSQL, in memory on the single-process embedded database.
import { RateLimiterMemory, RateLimiterPostgres, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type pg from 'pg';
import type { Connection } from './connect.ts';

export interface CounterOptions {
  keyPrefix: string;
  points: number;
  duration: number;
  /**
   * A hot path that must not fail on a database blip: count in memory meanwhile (insurance
   * limiter), and stop asking the database about a key once it is over, until its window ends.
   */
  tolerateOutage?: boolean;
}

export function createCounter(db: Connection, o: CounterOptions): RateLimiterAbstract {
  const memory = () => new RateLimiterMemory({ keyPrefix: o.keyPrefix, points: o.points, duration: o.duration });
  if (!db.pool) return memory();
  return new RateLimiterPostgres({
    storeClient: unnamedStatements(db.pool),
    storeType: 'pool',
    tableName: 'rate_limit',
    tableCreated: true,
    clearExpiredByTimeout: false, // src/jobs/cleanup.ts deletes expired rows on every instance
    keyPrefix: o.keyPrefix,
    points: o.points,
    duration: o.duration,
    ...(o.tolerateOutage ? { inMemoryBlockOnConsumed: o.points + 1, insuranceLimiter: memory() } : {}),
  });
}

/**
 * rate-limiter-flexible names its prepared statements ("rate_limit:rlflx-upsert"). A named
 * statement lives in one server session, and behind a transaction pooler (PgBouncer,
 * pool_mode=transaction) the next query of the same client connection may run in another
 * session: "prepared statement ... already exists" or "... does not exist". Sent unnamed, each
 * query is parsed where it runs, as every other query of Gatehouse is (README, "Production topology").
 */
function unnamedStatements(pool: pg.Pool): Pick<pg.Pool, 'query'> {
  return {
    query: ((q: { text: string; values?: unknown[] }) => pool.query({ text: q.text, values: q.values })) as pg.Pool['query'],
  };
}

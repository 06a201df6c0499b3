// One way to build a rate-limit counter (rate-limiter-flexible): shared by every instance in the
// `rate_limit` table on PostgreSQL, in memory on the single-process embedded database.
import { RateLimiterMemory, RateLimiterPostgres, type RateLimiterAbstract } from 'rate-limiter-flexible';
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
    storeClient: db.pool,
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

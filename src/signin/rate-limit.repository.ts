import type { Db } from '../db/handle.ts';

/** Counters whose window has passed (rate-limiter-flexible runs with clearExpiredByTimeout off). */
export async function deleteExpiredRateLimits(db: Db, now: Date = new Date()): Promise<number> {
  const res = await db.deleteFrom('rate_limit').where('expire', '<', now.getTime()).executeTakeFirst();
  return Number(res.numDeletedRows);
}

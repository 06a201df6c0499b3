import { sql } from 'kysely';
import type { Db } from '../db/handle.ts';

/**
 * Counters whose window has passed (rate-limiter-flexible runs with clearExpiredByTimeout off).
 * Rows a sign-in holds are skipped, not waited for: the multi-counter statements below lock several
 * rows in key order, and a delete in any other order could deadlock with them.
 */
export async function deleteExpiredRateLimits(db: Db, now: Date = new Date()): Promise<number> {
  const res = await db
    .deleteFrom('rate_limit')
    .where('key', 'in', (eb) =>
      eb.selectFrom('rate_limit').select('key').where('expire', '<', now.getTime()).orderBy('key').forUpdate().skipLocked(),
    )
    .where('expire', '<', now.getTime())
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}

/**
 * One point more on each counter, in one statement: per row the same atomic upsert as
 * rate-limiter-flexible's consume (a window that has ended starts again at 1). Keys must differ.
 * Returns each key's points and window end (ms), in no particular order.
 */
export async function takePoints(
  db: Db,
  rows: ReadonlyArray<{ key: string; expire: number }>,
  now: number,
): Promise<Array<{ key: string; points: number; expire: number }>> {
  // In key order, as every statement that locks several counters does: two of them never wait on each other.
  const sorted = [...rows].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const values = sql.join(sorted.map((r) => sql`(${r.key}, 1, ${r.expire}::bigint)`));
  const { rows: out } = await sql<{ key: string; points: number; expire: string }>`
    insert into rate_limit (key, points, expire) values ${values}
    on conflict (key) do update set
      points = case when rate_limit.expire <= ${now}::bigint then 1 else rate_limit.points + 1 end,
      expire = case when rate_limit.expire <= ${now}::bigint then excluded.expire else rate_limit.expire end
    returning key, points, expire`.execute(db);
  return out.map((r) => ({ key: r.key, points: r.points, expire: Number(r.expire) }));
}

/**
 * In one statement: give back one point of each `refund` counter (one whose window has ended is
 * deleted instead, as rate-limiter-flexible's reward followed by a delete of a negative count
 * leaves it), and delete the `remove` counters.
 */
export async function givePointsBack(db: Db, refund: readonly string[], remove: readonly string[], now: number): Promise<void> {
  // The rows are locked first, in key order (see takePoints), then changed.
  await sql`
    with locked as (
      select key, expire from rate_limit where key = any(${[...refund, ...remove]}::varchar[]) order by key for update
    ), refunded as (
      update rate_limit set points = rate_limit.points - 1 from locked
      where rate_limit.key = locked.key and rate_limit.key = any(${refund}::varchar[]) and locked.expire > ${now}::bigint
    )
    delete from rate_limit using locked
    where rate_limit.key = locked.key
      and (rate_limit.key = any(${remove}::varchar[]) or (rate_limit.key = any(${refund}::varchar[]) and locked.expire <= ${now}::bigint))`.execute(
    db,
  );
}

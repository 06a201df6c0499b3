// A shared counter taken in leases, for a hot path that must not write to the database on every
// request (the per-client token budget: a client-credentials token otherwise costs one upsert).
//
// Each instance takes points from the shared counter (rate-limiter-flexible, one atomic upsert)
// in blocks and hands them out from memory until the block is spent:
//  - the first request of a key in a window takes one point, which tells the instance how much of
//    the budget is used;
//  - later blocks are a share of what was left at the last look (1/LEASE_SHARE of it, at most
//    MAX_LEASE), so near the limit they shrink to one point and the counter is exact again;
//  - requests of one key that find the block empty wait for the one lease request in flight
//    instead of each asking the database; when half of a block is spent, the next one is asked
//    for in the background, so a steady client does not wait for the database at all.
// What this keeps: the shared counter never lets more than the limit through (a block is only
// handed out once the database has counted it), and the trip is seen once per key and window,
// by the consume that takes the counter from the limit or under to over it, whatever its size.
// What it gives up: points leased by an instance and not used before the window ends are lost to
// the others, at most a quarter of what was left at each look (the limit is a brake on a leaked
// secret, not a quota to the last token).
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

export const LEASE_SHARE = 4;
export const MAX_LEASE = 64;

export interface LeasedTake {
  /** Seconds to wait before the next request (0: allowed). */
  wait: number;
  /** This request took the shared counter over the limit (audit the trip once). */
  tripped: boolean;
}

interface Lease {
  /** Points leased and not yet handed out. */
  left: number;
  /** The shared counter's value at the last look. */
  known: number;
  /** When the window of this lease ends (ms epoch); the leased points vanish with it. */
  endsAt: number;
  /** Over the limit until then (ms epoch): refused from memory. */
  blockedUntil: number;
  /** The size of the last block. */
  size: number;
  /** A background lease tripped the limit: the next refusal reports the trip. */
  tripOwed: boolean;
  /** The lease request in flight, if any. */
  pending: Promise<void> | null;
}

const MAX_KEYS = 100_000;

export function leasedCounter(limiter: RateLimiterAbstract) {
  const leases = new Map<string, Lease>();

  const sweep = (now: number) => {
    for (const [k, s] of leases) if (!s.pending && s.endsAt <= now && s.blockedUntil <= now) leases.delete(k);
  };

  /** Ask the shared counter for a block; `taking`: the caller takes one point of it. */
  async function lease(key: string, s: Lease, taking: boolean): Promise<LeasedTake> {
    const size = s.endsAt > Date.now() ? Math.max(1, Math.min(MAX_LEASE, Math.floor((limiter.points - s.known) / LEASE_SHARE))) : 1;
    try {
      const res = await limiter.consume(key, size);
      // Points left of an earlier window are not this window's: a block in a new window replaces them.
      const sameWindow = s.endsAt > Date.now();
      s.known = res.consumedPoints;
      s.endsAt = Date.now() + res.msBeforeNext;
      s.size = size;
      s.left = (sameWindow ? s.left : 0) + size - (taking ? 1 : 0);
      return { wait: 0, tripped: false };
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      const wait = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      s.known = limiter.points;
      s.blockedUntil = Date.now() + wait * 1000;
      // A key blocked in the limiter's memory answers with consumedPoints 0: never a second trip.
      return { wait, tripped: res.consumedPoints > limiter.points && res.consumedPoints - size <= limiter.points };
    }
  }

  /** One lease request at a time per key; `taking` as for lease(). */
  function single(key: string, s: Lease, taking: boolean): Promise<LeasedTake> {
    const mine = lease(key, s, taking);
    s.pending = mine.then(
      () => undefined,
      () => undefined,
    );
    return mine.finally(() => {
      s.pending = null;
    });
  }

  return {
    /** One point off `key`, from this instance's lease when it has one. */
    async take(key: string): Promise<LeasedTake> {
      for (;;) {
        const now = Date.now();
        let s = leases.get(key);
        if (s && !s.pending && s.endsAt <= now) s.left = 0;
        if (s && s.left > 0) {
          s.left--;
          if (s.left === Math.floor(s.size / 2) && s.size > 1 && !s.pending) {
            // Half of the block is spent: ask for the next one now, nobody waits for it.
            const ahead = s;
            single(key, ahead, false).then(
              (v) => {
                if (v.tripped) ahead.tripOwed = true;
              },
              () => {}, // the database and the insurance both failed: the next request asks again
            );
          }
          return { wait: 0, tripped: false };
        }
        // Points already counted by the database are handed out first; then the refusal.
        if (s && s.blockedUntil > now) {
          const tripped = s.tripOwed;
          s.tripOwed = false;
          return { wait: Math.max(1, Math.ceil((s.blockedUntil - now) / 1000)), tripped };
        }
        if (s?.pending) {
          await s.pending.catch(() => {});
          continue;
        }
        if (!s) {
          if (leases.size >= MAX_KEYS) sweep(now);
          s = { left: 0, known: 0, endsAt: 0, blockedUntil: 0, size: 0, tripOwed: false, pending: null };
          leases.set(key, s);
        }
        return single(key, s, true);
      }
    },
  };
}

export type LeasedCounter = ReturnType<typeof leasedCounter>;

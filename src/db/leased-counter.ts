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
//    instead of each asking the database.
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
  /** The lease request in flight, if any. */
  pending: Promise<void> | null;
}

const MAX_KEYS = 100_000;

export function leasedCounter(limiter: RateLimiterAbstract) {
  const leases = new Map<string, Lease>();

  const sweep = (now: number) => {
    for (const [k, s] of leases) if (!s.pending && s.endsAt <= now && s.blockedUntil <= now) leases.delete(k);
  };

  async function lease(key: string, s: Lease): Promise<LeasedTake> {
    const size = s.endsAt > Date.now() ? Math.max(1, Math.min(MAX_LEASE, Math.floor((limiter.points - s.known) / LEASE_SHARE))) : 1;
    try {
      const res = await limiter.consume(key, size);
      s.known = res.consumedPoints;
      s.endsAt = Date.now() + res.msBeforeNext;
      s.left = size - 1;
      return { wait: 0, tripped: false };
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res;
      const wait = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      s.known = limiter.points;
      s.left = 0;
      s.blockedUntil = Date.now() + wait * 1000;
      // A key blocked in the limiter's memory answers with consumedPoints 0: never a second trip.
      return { wait, tripped: res.consumedPoints > limiter.points && res.consumedPoints - size <= limiter.points };
    }
  }

  return {
    /** One point off `key`, from this instance's lease when it has one. */
    async take(key: string): Promise<LeasedTake> {
      for (;;) {
        const now = Date.now();
        let s = leases.get(key);
        if (s && !s.pending && s.endsAt <= now) s.left = 0;
        if (s && s.blockedUntil > now) return { wait: Math.max(1, Math.ceil((s.blockedUntil - now) / 1000)), tripped: false };
        if (s && s.left > 0) {
          s.left--;
          return { wait: 0, tripped: false };
        }
        if (s?.pending) {
          await s.pending.catch(() => {});
          continue;
        }
        if (!s) {
          if (leases.size >= MAX_KEYS) sweep(now);
          s = { left: 0, known: 0, endsAt: 0, blockedUntil: 0, pending: null };
          leases.set(key, s);
        }
        const mine = lease(key, s);
        s.pending = mine.then(
          () => undefined,
          () => undefined,
        );
        try {
          return await mine;
        } finally {
          s.pending = null;
        }
      }
    },
  };
}

export type LeasedCounter = ReturnType<typeof leasedCounter>;

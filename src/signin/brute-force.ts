// Brute-force defence for every sign-in step (password, TOTP, backup code, passkey), with counters
// every instance shares (PostgreSQL) or in memory on the single-process embedded database.
//  - per IP, for everyone: at most 5 failed attempts a minute (agentserver SECURITY.md, "Auth
//    attempts 5/min per IP"); only failures count, so a person signing in successfully does not
//    use up the budget of others behind the same address;
//  - per account, for devices the account has not signed in from: at most 100 failed attempts an
//    hour (OWASP ASVS 4.0 V2.2.1) and a growing delay after the 4th consecutive failure (1 s, 2 s,
//    4 s … capped at 60 s), reset by a completed sign-in from such a device. A cap, not a lock: an
//    attacker can slow a person down, never shut them out for good (NIST SP 800-63B §5.2.2);
//  - per device cookie (src/signin/device-cookie.ts): a browser that completed a sign-in for the
//    account is not subject to the account's counters, so an attacker who keeps them tripped does
//    not keep the owner out (OWASP "Slow down online guessing attacks with device cookies"); its
//    own failures count on that cookie alone, which is refused after 10 in an hour.
// Points are taken BEFORE the credential is verified and given back when it is right or when the
// attempt is refused, with the limiters' atomic upserts: a burst of parallel requests cannot all
// pass a check made before any of them failed (issue 7, point 1). On PostgreSQL the points of one
// attempt are taken in one statement (one atomic upsert per counter, ./rate-limit.repository.ts)
// and given back, or forgiven, in one more; a refusal gives back everything but the first counter
// that refused (in the order address, account or device, pending), which is what taking them one
// by one and stopping at that counter would leave.
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { createCounter } from '../db/rate-limiter.ts';
import type { Connection } from '../db/connect.ts';
import { givePointsBack, takePoints } from './rate-limit.repository.ts';

export const IP_FAILURES_PER_MINUTE = 5;
export const ACCOUNT_FAILURES_PER_HOUR = 100;
export const DEVICE_FAILURES_PER_HOUR = 10;
export const FREE_CONSECUTIVE_FAILURES = 3;
export const MAX_DELAY_SECONDS = 60;

export type Scope = 'ip' | 'account' | 'device';

/** Who is attempting: the address, the account's brute-force key, and the device cookie's nonce if it is valid for that account. */
export interface Subject {
  ip: string;
  accountKey: string;
  device: string | null;
}

/** An attempt allowed to be evaluated; hand it back through failed(), passed() or finished(). */
export interface Ticket {
  readonly subject: Subject;
  /** What the attempt took: [limiter, key, consumed points after taking] each. */
  readonly taken: ReadonlyArray<{ limiter: RateLimiterAbstract; key: string; consumed: number }>;
  readonly heldDelaySlot: boolean;
}

export type Attempt =
  { allowed: true; ticket: Ticket } | { allowed: false; retryAfterSeconds: number; scope: Scope; firstRefusal: boolean };

export interface BruteForce {
  /** Take the points of one evaluation before verifying. A refusal gives back what it took. */
  attempt(subject: Subject): Promise<Attempt>;
  /** The credential was wrong: the points stay spent. `tripped` when this failure used up a budget. */
  failed(ticket: Ticket): Promise<{ tripped: boolean }>;
  /** The credential was right (a step passed, the sign-in may go on): the points come back. */
  passed(ticket: Ticket): Promise<void>;
  /** The sign-in completed: the points come back and the consecutive failures are forgiven. */
  finished(ticket: Ticket): Promise<void>;
  /** Would an attempt be refused now (for steps that verify nothing, like passkey options)? Takes nothing. */
  peek(subject: Subject): Promise<Attempt | { allowed: true }>;
}

export interface BruteForceOptions {
  /** Seconds of the per-IP window (GATEHOUSE_SIGNIN_IP_WINDOW, default 60). */
  ipWindowSeconds?: number;
}

const delayFor = (failures: number) => Math.min(2 ** (failures - FREE_CONSECUTIVE_FAILURES - 1), MAX_DELAY_SECONDS);
const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export function createBruteForce(db: Connection, opts: BruteForceOptions = {}): BruteForce {
  const make = (keyPrefix: string, points: number, duration: number): RateLimiterAbstract =>
    createCounter(db, { keyPrefix, points, duration });
  const ipWindow = opts.ipWindowSeconds ?? 60;
  const ipFailures = make('signin_ip', IP_FAILURES_PER_MINUTE, ipWindow);
  const accountFailures = make('signin_account', ACCOUNT_FAILURES_PER_HOUR, 3600);
  const deviceFailures = make('signin_device', DEVICE_FAILURES_PER_HOUR, 3600);
  // Failures plus attempts in flight: decides, atomically, which attempts come free of the delay.
  const pending = make('signin_pending', 1_000_000, 3600);
  // Recorded failures only: how long the delay after the latest one is.
  const consecutive = make('signin_consecutive', 1_000_000, 3600);
  // One point: held by the one attempt being evaluated once the free failures are used, or blocked for the delay.
  const delay = make('signin_delay', 1, MAX_DELAY_SECONDS);

  const limits = new Map<RateLimiterAbstract, [number, Scope]>([
    [ipFailures, [IP_FAILURES_PER_MINUTE, 'ip']],
    [accountFailures, [ACCOUNT_FAILURES_PER_HOUR, 'account']],
    [deviceFailures, [DEVICE_FAILURES_PER_HOUR, 'device']],
    [delay, [1, 'account']],
  ]);

  /** Give a point back; a window that ended in between must not start the next one below zero. */
  async function refund(limiter: RateLimiterAbstract, key: string) {
    const res = await limiter.reward(key, 1);
    if (res.consumedPoints < 0) await limiter.delete(key);
  }

  async function take(limiter: RateLimiterAbstract, key: string): Promise<number | RateLimiterRes> {
    try {
      return (await limiter.consume(key, 1)).consumedPoints;
    } catch (err) {
      if (err instanceof RateLimiterRes) return err;
      throw err;
    }
  }

  type Taken = { limiter: RateLimiterAbstract; key: string; consumed: number; msBeforeNext: number };

  /** One point of each counter: one statement on PostgreSQL, the limiters one by one in memory. */
  async function takeAll(plan: ReadonlyArray<[RateLimiterAbstract, string]>): Promise<Taken[]> {
    if (!db.pool) {
      const out: Taken[] = [];
      for (const [limiter, key] of plan) {
        const r = await take(limiter, key);
        out.push({
          limiter,
          key,
          consumed: typeof r === 'number' ? r : r.consumedPoints,
          msBeforeNext: typeof r === 'number' ? 0 : r.msBeforeNext,
        });
        if (typeof r !== 'number') break; // as on PostgreSQL once the others are given back
      }
      return out;
    }
    const now = Date.now();
    const rows = await takePoints(
      db.kysely,
      plan.map(([limiter, key]) => ({ key: limiter.getKey(key), expire: now + limiter.duration * 1000 })),
      now,
    );
    const byKey = new Map(rows.map((r) => [r.key, r]));
    return plan.map(([limiter, key]) => {
      const row = byKey.get(limiter.getKey(key))!;
      return { limiter, key, consumed: row.points, msBeforeNext: Math.max(0, row.expire - now) };
    });
  }

  /** Give back a point of each of `back` and delete `remove`: one statement on PostgreSQL. */
  async function settle(
    back: ReadonlyArray<{ limiter: RateLimiterAbstract; key: string }>,
    remove: ReadonlyArray<[RateLimiterAbstract, string]>,
  ) {
    if (back.length === 0 && remove.length === 0) return;
    if (!db.pool) {
      await Promise.all([...back.map((t) => refund(t.limiter, t.key)), ...remove.map(([limiter, key]) => limiter.delete(key))]);
      return;
    }
    await givePointsBack(
      db.kysely,
      back.map((t) => t.limiter.getKey(t.key)),
      remove.map(([limiter, key]) => limiter.getKey(key)),
      Date.now(),
    );
  }

  async function attempt(s: Subject): Promise<Attempt> {
    const plan: Array<[RateLimiterAbstract, string]> = [[ipFailures, s.ip]];
    if (s.device) plan.push([deviceFailures, s.device]);
    else plan.push([accountFailures, s.accountKey], [pending, s.accountKey]);
    const results = await takeAll(plan);
    const refused = results.findIndex((r) => r.consumed > r.limiter.points);
    if (refused >= 0) {
      const r = results[refused]!;
      // The refusing counter keeps its point (how its first refusal in a window is recognised).
      await settle(
        results.filter((_, i) => i !== refused),
        [],
      );
      const [points, scope] = limits.get(r.limiter)!;
      return { allowed: false, retryAfterSeconds: seconds(r.msBeforeNext), scope, firstRefusal: r.consumed === points + 1 };
    }
    const taken = results.map(({ limiter, key, consumed }) => ({ limiter, key, consumed }));
    let heldDelaySlot = false;
    const inFlightOrFailed = taken.find((t) => t.limiter === pending)?.consumed ?? 0;
    if (inFlightOrFailed > FREE_CONSECUTIVE_FAILURES + 1) {
      const r = await take(delay, s.accountKey);
      if (typeof r !== 'number') {
        await settle(taken, []);
        return { allowed: false, retryAfterSeconds: seconds(r.msBeforeNext), scope: 'account', firstRefusal: false };
      }
      heldDelaySlot = true;
    }
    return { allowed: true, ticket: { subject: s, taken, heldDelaySlot } };
  }

  return {
    attempt,
    async failed(t) {
      const { subject: s } = t;
      if (!s.device) {
        const n = (await consecutive.penalty(s.accountKey, 1)).consumedPoints;
        if (n > FREE_CONSECUTIVE_FAILURES) await delay.block(s.accountKey, delayFor(n));
        // Held by an attempt of a burst that counted in-flight others: its own failure is still a free one.
        else if (t.heldDelaySlot) await delay.delete(s.accountKey);
      }
      return { tripped: t.taken.some((x) => x.consumed === limits.get(x.limiter)?.[0]) };
    },
    passed: (t) => settle(t.taken, t.heldDelaySlot ? [[delay, t.subject.accountKey]] : []),
    async finished(t) {
      const { subject: s } = t;
      // The points come back, and the consecutive failures are forgiven: a counter deleted needs no
      // point back first. A completed sign-in from an unknown device forgives that path's run; one
      // from a known device does not, or it would hand an attacker who keeps the account tripped fresh free tries.
      const remove: Array<[RateLimiterAbstract, string]> = s.device
        ? [[deviceFailures, s.device], ...(t.heldDelaySlot ? [[delay, s.accountKey] as [RateLimiterAbstract, string]] : [])]
        : [
            [consecutive, s.accountKey],
            [pending, s.accountKey],
            [delay, s.accountKey],
          ];
      const removed = new Set(remove.map(([limiter, key]) => limiter.getKey(key)));
      await settle(
        t.taken.filter((x) => !removed.has(x.limiter.getKey(x.key))),
        remove,
      );
    },
    async peek(s) {
      const blockedFor = async (limiter: RateLimiterAbstract, key: string) => {
        const res = await limiter.get(key);
        return res && res.consumedPoints >= limits.get(limiter)![0] ? seconds(res.msBeforeNext) : 0;
      };
      const checks: Array<[RateLimiterAbstract, string]> = [[ipFailures, s.ip]];
      if (s.device) checks.push([deviceFailures, s.device]);
      else checks.push([accountFailures, s.accountKey], [delay, s.accountKey]);
      for (const [limiter, key] of checks) {
        const wait = await blockedFor(limiter, key);
        if (wait) return { allowed: false, retryAfterSeconds: wait, scope: limits.get(limiter)![1], firstRefusal: false };
      }
      return { allowed: true };
    },
  };
}

// Brute-force defence for every sign-in step (password, TOTP, backup code), with counters every
// instance shares (PostgreSQL) or in memory on the single-process embedded database.
//  - per IP: at most 5 failed attempts a minute (agentserver SECURITY.md, "Auth attempts
//    5/min per IP"); only failures count, so a person signing in successfully does not use up
//    the budget of others behind the same address;
//  - per account: at most 100 failed attempts an hour (OWASP ASVS 4.0 V2.2.1);
//  - per account: a growing delay after the 3rd consecutive failure (1 s, 2 s, 4 s … capped at
//    60 s), reset by a success. A cap, not a lock: an attacker can slow a person down, never
//    shut them out for good (NIST SP 800-63B §5.2.2).
import { RateLimiterMemory, RateLimiterPostgres, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Connection } from '../db/connect.ts';

export const IP_FAILURES_PER_MINUTE = 5;
export const ACCOUNT_FAILURES_PER_HOUR = 100;
export const FREE_CONSECUTIVE_FAILURES = 3;
export const MAX_DELAY_SECONDS = 60;

export type Verdict = { allowed: true } | { allowed: false; retryAfterSeconds: number; scope: 'ip' | 'account' };

export interface BruteForce {
  check(ip: string, accountKey: string): Promise<Verdict>;
  /** Record a failure; `tripped` when this failure used up a budget (worth an audit event). */
  fail(ip: string, accountKey: string): Promise<{ tripped: boolean }>;
  succeed(accountKey: string): Promise<void>;
}

export function createBruteForce(db: Connection): BruteForce {
  const make = (keyPrefix: string, points: number, duration: number): RateLimiterAbstract =>
    db.pool
      ? new RateLimiterPostgres({
          storeClient: db.pool,
          storeType: 'pool',
          tableName: 'rate_limit',
          tableCreated: true,
          clearExpiredByTimeout: false,
          keyPrefix,
          points,
          duration,
        })
      : new RateLimiterMemory({ keyPrefix, points, duration });
  const ipFailures = make('signin_ip', IP_FAILURES_PER_MINUTE, 60);
  const accountFailures = make('signin_account', ACCOUNT_FAILURES_PER_HOUR, 3600);
  const consecutive = make('signin_consecutive', 1_000_000, 3600);
  const delay = make('signin_delay', 1, 1);

  const blockedFor = async (limiter: RateLimiterAbstract, key: string, points: number) => {
    const res = await limiter.get(key);
    return res && res.consumedPoints >= points ? Math.max(1, Math.ceil(res.msBeforeNext / 1000)) : 0;
  };

  return {
    async check(ip, accountKey) {
      const ipWait = await blockedFor(ipFailures, ip, IP_FAILURES_PER_MINUTE);
      if (ipWait) return { allowed: false, retryAfterSeconds: ipWait, scope: 'ip' };
      const accountWait = Math.max(
        await blockedFor(accountFailures, accountKey, ACCOUNT_FAILURES_PER_HOUR),
        await blockedFor(delay, accountKey, 2),
      );
      if (accountWait) return { allowed: false, retryAfterSeconds: accountWait, scope: 'account' };
      return { allowed: true };
    },
    async fail(ip, accountKey) {
      const take = (l: RateLimiterAbstract, k: string) => l.penalty(k, 1);
      const [byIp, byAccount, run] = await Promise.all([
        take(ipFailures, ip),
        take(accountFailures, accountKey),
        take(consecutive, accountKey),
      ]);
      const n = run.consumedPoints;
      if (n > FREE_CONSECUTIVE_FAILURES) {
        await delay.block(accountKey, Math.min(2 ** (n - FREE_CONSECUTIVE_FAILURES - 1), MAX_DELAY_SECONDS));
      }
      return { tripped: byIp.consumedPoints === IP_FAILURES_PER_MINUTE || byAccount.consumedPoints === ACCOUNT_FAILURES_PER_HOUR };
    },
    async succeed(accountKey) {
      await Promise.all([consecutive.delete(accountKey), delay.delete(accountKey)]);
    },
  };
}

// Rate limits beyond sign-in (issue 7 §7; agentserver SECURITY.md: "API keys with IP
// allowlisting + rate limits"), with counters every instance shares on PostgreSQL and in memory
// on the single-process embedded database:
//  - per client at /token: `--rate-limit N` token requests a minute (default 600), counted only
//    once the client has authenticated, so nobody can spend another client's budget; each
//    instance takes the budget from the shared counter in leases (src/db/leased-counter.ts);
//  - per address: unauthenticated failures (unknown or wrong client credentials, a client
//    outside its allowed networks, a dead invitation link, a wrong device-flow user code) at
//    /token, /auth, /enroll/*, /device, introspection and revocation; once an address is over, it gets 429 at all of them for the
//    rest of the window. Checking that costs no query: the verdict is kept in memory by each
//    instance when its own counting (against the shared counter) says so.
// A trip is audited once per key and window: the request that takes the counter from the limit
// to one over is the only one that sees exactly limit+1, whichever instance serves it.
import type { ServerResponse } from 'node:http';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { createCounter } from '../db/rate-limiter.ts';
import { leasedCounter, type LeasedCounter } from '../db/leased-counter.ts';
import type { AuditSink } from '../audit/sink.ts';
import type { Connection } from '../db/connect.ts';
import type { Logger } from '../log.ts';
import { addressKey } from './address-key.ts';

/** Unauthenticated failures a minute per address (an IPv6 /64): room for a misconfigured service's retries, not for guessing. */
export const ADDRESS_FAILURES_PER_MINUTE = 30;
export const WINDOW_SECONDS = 60;
const MAX_BLOCKED_ADDRESSES = 100_000;

export type LimitedEndpoint = 'token' | 'authorization' | 'introspection' | 'revocation' | 'enroll' | 'device';

export interface RateLimits {
  /** Seconds `ip` must wait before its next request at a limited endpoint, 0 to go on. Memory only. */
  addressWait(ip: string): number;
  /** Count an unauthenticated failure from `ip`. Never throws. */
  addressFailed(ip: string, endpoint: LimitedEndpoint, requestId?: string | null): Promise<void>;
  /** Count one token request of an authenticated client: seconds to wait when over `limit`, else 0. */
  clientToken(clientId: string, limit: number, ip: string, requestId?: string | null): Promise<number>;
}

/**
 * A PostgreSQL counter that a database blip does not turn into refused tokens (the in-memory
 * insurance limiter counts meanwhile), and that stops asking the database about a key once it
 * is over, until its window ends (inMemoryBlockOnConsumed).
 */
function limiter(db: Connection, keyPrefix: string, points: number): RateLimiterAbstract {
  return createCounter(db, { keyPrefix, points, duration: WINDOW_SECONDS, tolerateOutage: true });
}

/** One point off `key`: how long to wait (0: allowed), and whether this request tripped the limit. */
async function take(l: RateLimiterAbstract, key: string): Promise<{ wait: number; tripped: boolean }> {
  try {
    await l.consume(key);
    return { wait: 0, tripped: false };
  } catch (res) {
    if (!(res instanceof RateLimiterRes)) throw res;
    // A key blocked in memory answers with consumedPoints 0: never a second trip.
    return { wait: Math.max(1, Math.ceil(res.msBeforeNext / 1000)), tripped: res.consumedPoints === l.points + 1 };
  }
}

export function createRateLimits(deps: { db: Connection; audit: AuditSink; log: Logger; addressFailuresPerMinute?: number }): RateLimits {
  const { audit, log } = deps;
  const addressPoints = deps.addressFailuresPerMinute ?? ADDRESS_FAILURES_PER_MINUTE;
  const addressFailures = limiter(deps.db, 'unauth_address', addressPoints);
  const blocked = new Map<string, number>();
  const perLimit = new Map<number, LeasedCounter>();
  // One counter per client whatever its limit (one key prefix), so a changed limit keeps the count;
  // taken in leases (src/db/leased-counter.ts) so that a token does not cost a database write.
  const clientLimiter = (points: number) => {
    let l = perLimit.get(points);
    if (!l) perLimit.set(points, (l = leasedCounter(limiter(deps.db, 'token_client', points))));
    return l;
  };

  const block = (key: string, seconds: number) => {
    if (blocked.size >= MAX_BLOCKED_ADDRESSES) {
      const now = Date.now();
      for (const [k, until] of blocked) if (until <= now) blocked.delete(k);
      if (blocked.size >= MAX_BLOCKED_ADDRESSES) blocked.clear();
    }
    blocked.set(key, Date.now() + seconds * 1000);
  };

  const trip = (event: Parameters<AuditSink>[0]) =>
    audit(event).catch((err) => log.error({ err: (err as Error).message, action: event.action }, 'rate-limit trip not audited'));

  return {
    addressWait(ip) {
      const key = addressKey(ip);
      const until = blocked.get(key);
      if (until === undefined) return 0;
      const left = until - Date.now();
      if (left > 0) return Math.ceil(left / 1000);
      blocked.delete(key);
      return 0;
    },

    async addressFailed(ip, endpoint, requestId) {
      const key = addressKey(ip);
      try {
        const { wait, tripped } = await take(addressFailures, key);
        if (wait) block(key, wait);
        if (tripped) {
          await trip({
            action: 'ratelimit.trip',
            outcome: 'denied',
            actor: 'anonymous',
            ip: ip || null,
            requestId: requestId ?? null,
            details: { scope: 'address', address: key, endpoint, limit: addressPoints, window_seconds: WINDOW_SECONDS },
          });
        }
      } catch (err) {
        log.warn({ err: (err as Error).message, endpoint }, 'counting an unauthenticated failure failed');
      }
    },

    async clientToken(clientId, limit, ip, requestId) {
      let verdict: { wait: number; tripped: boolean };
      try {
        verdict = await clientLimiter(limit).take(clientId);
      } catch (err) {
        // Both the database and the insurance failed: issue rather than refuse (the limit is
        // a brake on a leaked secret, not an authorization decision).
        log.warn({ err: (err as Error).message }, 'client rate limit unavailable');
        return 0;
      }
      if (verdict.tripped) {
        await trip({
          action: 'ratelimit.trip',
          outcome: 'denied',
          actor: /^(?:svc|app)_[A-Za-z0-9_-]{1,64}$/.test(clientId) ? clientId : 'anonymous',
          target: clientId,
          ip: ip || null,
          requestId: requestId ?? null,
          details: { scope: 'client', endpoint: 'token', limit, window_seconds: WINDOW_SECONDS },
        });
      }
      return verdict.wait;
    },
  };
}

/** Which limited endpoint a path is, if any (oidc-provider's default routes). */
export function limitedEndpoint(path: string): LimitedEndpoint | null {
  if (path === '/token') return 'token';
  if (path === '/token/introspection') return 'introspection';
  if (path === '/token/revocation') return 'revocation';
  if (path === '/auth' || path.startsWith('/auth/')) return 'authorization';
  if (path.startsWith('/enroll/')) return 'enroll';
  // The device flow: user-code entry (a wrong code counts, src/oidc/device-flow.ts) and the device authorization endpoint.
  if (path === '/device' || path === '/device/auth') return 'device';
  return null;
}

/**
 * 429 (RFC 6585) with Retry-After, in the OAuth error shape. `temporarily_unavailable` is the
 * registered OAuth code for "cannot handle the request now, try later" (RFC 6749 §4.1.2.1, IANA
 * OAuth Extensions Error registry); `slow_down` (RFC 8628 §3.5) means "poll the device endpoint
 * less often" and no client of another grant would act on it.
 */
export function tooManyRequestsBody(seconds: number) {
  return { error: 'temporarily_unavailable', error_description: `too many requests: retry after ${seconds} seconds` };
}

export function answerTooManyRequests(res: ServerResponse, seconds: number): void {
  res.writeHead(429, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'retry-after': String(seconds) });
  res.end(JSON.stringify(tooManyRequestsBody(seconds)));
}

/**
 * The per-client budget of POST /audit/events, in events a minute (GATEHOUSE_AUDIT_INGEST_LIMIT),
 * shared by every instance like the token budget. Answers the seconds to wait (0: go on); a trip
 * is audited once per client and window. Counted only for an authenticated client.
 */
export function createIngestLimit(deps: { db: Connection; audit: AuditSink; log: Logger; eventsPerMinute: number }) {
  const l = limiter(deps.db, 'audit_ingest_client', deps.eventsPerMinute);
  return async function ingestWait(clientId: string, events: number, ip: string, requestId?: string | null): Promise<number> {
    try {
      await l.consume(clientId, events);
      return 0;
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) {
        deps.log.warn({ err: (res as Error).message }, 'audit ingestion rate limit unavailable');
        return 0;
      }
      const tripped = res.consumedPoints > l.points && res.consumedPoints - events <= l.points;
      if (tripped) {
        await deps
          .audit({
            action: 'ratelimit.trip',
            outcome: 'denied',
            actor: /^(?:svc|app)_[A-Za-z0-9_-]{1,64}$/.test(clientId) ? clientId : 'anonymous',
            target: clientId,
            ip: ip || null,
            requestId: requestId ?? null,
            details: { scope: 'client', endpoint: 'audit_events', limit: l.points, window_seconds: WINDOW_SECONDS },
          })
          .catch((err) => deps.log.error({ err: (err as Error).message }, 'rate-limit trip not audited'));
      }
      return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    }
  };
}

export type IngestLimit = ReturnType<typeof createIngestLimit>;

// OpenID Connect Back-Channel Logout 1.0: when a person's session ends, every client that took
// part in it and registered a backchannel_logout_uri gets a signed logout token by POST.
//
// One path for every way a session ends (docs/architecture.md, "Back-channel logout"): the end is
// written to the outbox (./backchannel-logout.repository.ts) in the transaction that ends the
// session (sign-out at /session/end through oidc-provider's Client#backchannelLogout, replaced
// below; a password change, disabling, a factor reset, "end all sessions" and the other
// account changes in src/accounts/accounts.service.ts; one session ended in /account; expiry in the
// cleanup job), and this deliverer, running on every instance, sends what is due:
//  - never in the person's request: the request only inserts rows; delivery runs on a timer;
//  - the token (§2.4): iss, aud = the client, iat, exp (2 minutes), jti (the row id, the same for
//    every attempt), sub, sid, events {"http://schemas.openid.net/event/backchannel-logout": {}},
//    no nonce; header typ logout+jwt, signed with the current key of the client's ID token
//    algorithm (RS256 unless registered otherwise), so it verifies against /jwks;
//  - POST application/x-www-form-urlencoded `logout_token=…`, no redirects followed, 200 or 204
//    is success (§2.8), a timeout per attempt; anything else is retried with backoff, a bounded
//    number of times, then dropped; every retry and failure is logged (client, reason, attempt,
//    never the token) and counted in gatehouse_backchannel_logout_total{outcome};
//  - loopback and private addresses are allowed: logout URIs are registered by owners, never by
//    the public (oidc-provider's own sender refuses such addresses; it is not used).
import { importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import type Provider from 'oidc-provider';
import type { ClientCache } from '../clients/client-cache.ts';
import type { Db } from '../db/handle.ts';
import type { KeySet } from '../keys/keys.service.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../http/metrics.ts';
import { claimDue, deleteDelivery, enqueueLogout, retryDeliveryAt, type LogoutDelivery } from './backchannel-logout.repository.ts';

export const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Waits before the 2nd, 3rd … attempt: six attempts over about 13 minutes, then the delivery is dropped. */
export const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000, 600_000];
/** One attempt's limit: a receiver that does not answer in time counts as failed and is retried. */
export const DEFAULT_DELIVERY_TIMEOUT_MS = 5_000;
/** A logout token's lifetime: it is sent at once, and a receiver should refuse an old one (§2.6). */
export const LOGOUT_TOKEN_TTL_SECONDS = 120;
const BATCH = 20;

export interface BackchannelLogoutOptions {
  retryDelaysMs?: number[];
  timeoutMs?: number;
  pollMs?: number;
}

export interface BackchannelLogoutDeps extends BackchannelLogoutOptions {
  db: Db;
  clients: ClientCache;
  issuer: string;
  keys: () => KeySet;
  log: Logger;
  metrics: Metrics;
}

export interface BackchannelLogout {
  start(): void;
  /** Deliver what is due now (also run by the timer). */
  runOnce(): Promise<void>;
  /** Ask for a run soon, without waiting for it. */
  kick(): void;
  stop(): Promise<void>;
}

export function createBackchannelLogout(deps: BackchannelLogoutDeps): BackchannelLogout {
  const retryDelays = deps.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  const timeoutMs = deps.timeoutMs ?? DEFAULT_DELIVERY_TIMEOUT_MS;
  const pollMs = deps.pollMs ?? 1000;
  const maxAttempts = retryDelays.length + 1;
  // A claimed row is leased past the attempt's timeout, so only a dead instance's rows are retaken.
  const leaseMs = timeoutMs + 30_000;
  const imported = new Map<string, Promise<CryptoKey | Uint8Array>>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  function signingKey(alg: string): JWK {
    const set = deps.keys();
    const kid = set.currentKid[alg as keyof KeySet['currentKid']];
    const jwk = set.signing.find((k) => k.kid === kid) ?? set.signing.find((k) => k.alg === 'RS256');
    if (!jwk) throw new Error('no current signing key');
    return jwk;
  }

  async function logoutToken(row: LogoutDelivery, alg: string): Promise<string> {
    const jwk = signingKey(alg);
    let key = imported.get(jwk.kid!);
    if (!key) imported.set(jwk.kid!, (key = importJWK(jwk, jwk.alg)));
    return new SignJWT({ events: { [LOGOUT_EVENT]: {} }, ...(row.sid ? { sid: row.sid } : {}) })
      .setProtectedHeader({ alg: jwk.alg!, kid: jwk.kid!, typ: 'logout+jwt' })
      .setIssuer(deps.issuer)
      .setAudience(row.client_id)
      .setSubject(row.sub)
      .setIssuedAt()
      .setExpirationTime(`${LOGOUT_TOKEN_TTL_SECONDS}s`)
      .setJti(row.id)
      .sign(await key);
  }

  /** 'dropped': nothing to deliver to any more (client deleted, or its logout URI removed). */
  async function deliver(row: LogoutDelivery): Promise<'delivered' | 'dropped'> {
    const client = await deps.clients.get(row.client_id);
    const uri = client?.metadata.backchannel_logout_uri;
    if (typeof uri !== 'string') return 'dropped';
    const alg = typeof client!.metadata.id_token_signed_response_alg === 'string' ? client!.metadata.id_token_signed_response_alg : 'RS256';
    const res = await fetch(uri, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ logout_token: await logoutToken(row, alg) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel().catch(() => {});
    if (res.status !== 200 && res.status !== 204) throw new Error(`answered ${res.status}`);
    return 'delivered';
  }

  async function settle(row: LogoutDelivery): Promise<void> {
    const about = { client_id: row.client_id, reason: row.reason, attempt: row.attempts };
    try {
      const outcome = await deliver(row);
      await deleteDelivery(deps.db, row.id);
      deps.metrics.backchannelLogout.inc({ outcome });
      deps.log.info(
        about,
        outcome === 'delivered' ? 'back-channel logout delivered' : 'back-channel logout dropped: the client has no logout URI',
      );
    } catch (err) {
      const message = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message;
      if (row.attempts >= maxAttempts) {
        await deleteDelivery(deps.db, row.id);
        deps.metrics.backchannelLogout.inc({ outcome: 'failed' });
        deps.log.error({ ...about, err: message }, 'back-channel logout failed: giving up');
      } else {
        await retryDeliveryAt(deps.db, row.id, new Date(Date.now() + retryDelays[row.attempts - 1]!));
        deps.metrics.backchannelLogout.inc({ outcome: 'retried' });
        deps.log.warn({ ...about, err: message }, 'back-channel logout failed: will retry');
      }
    }
  }

  async function run(): Promise<void> {
    do {
      again = false;
      for (;;) {
        const now = new Date();
        const due = await claimDue(deps.db, now, new Date(now.getTime() + leaseMs), BATCH);
        await Promise.all(
          due.map((row) =>
            settle(row).catch((err) => deps.log.warn({ err: (err as Error).message }, 'back-channel logout bookkeeping failed')),
          ),
        );
        if (due.length < BATCH || stopped) break;
      }
    } while (again && !stopped);
  }

  const deliverer: BackchannelLogout = {
    start() {
      stopped = false;
      timer = setInterval(() => deliverer.kick(), pollMs);
      timer.unref();
    },
    runOnce() {
      if (running) {
        again = true;
        return running;
      }
      running = run()
        .catch((err) => deps.log.warn({ err: (err as Error).message }, 'back-channel logout run failed'))
        .finally(() => {
          running = null;
        });
      return running;
    },
    kick() {
      if (!stopped) void deliverer.runOnce();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
  };
  return deliverer;
}

/**
 * oidc-provider's end-session (/session/end) calls Client#backchannelLogout for each client of
 * the session with a logout URI, and waits for it. Here it only writes the outbox row and asks
 * the deliverer to run: the person's sign-out never waits for a client.
 */
export function sendLogoutsThroughOutbox(provider: Provider, deps: { db: Db; kick: () => void }): void {
  (provider.Client as any).prototype.backchannelLogout = async function backchannelLogout(
    this: { clientId: string },
    sub: string,
    sid: string | undefined,
  ) {
    await enqueueLogout(deps.db, { clientId: this.clientId, sub, sid: sid ?? null, reason: 'signout' });
    deps.kick();
  };
}

// gatehouse/audit-client: the agentserver's side of POST /audit/events (docs/architecture.md,
// "Audit ingestion"). `append(event)` never blocks and never throws for a network problem: events
// wait in a bounded buffer and go out in batches (up to `maxBatch` events, or every
// `flushIntervalMs`), one request at a time so seqs follow the order of append. The access token
// (client credentials, resource = the issuer) is cached and renewed before it expires. A batch
// that fails for a reason worth retrying (network, 401 once the token is renewed, 429, 5xx) is
// sent again as it was: same events, same event_ids, so Gatehouse appends each at most once,
// waiting Retry-After when the server gives one and a growing backoff otherwise. When the buffer
// is full, or an event is refused as invalid, the event is dropped and reported: the `onDrop`
// callback, the 'drop' event and `stats.dropped` (an audit trail with holes must say so).
// No dependency beyond Node's fetch, so it is safe to vendor.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';

export interface AuditClientEvent {
  /** e.g. `control.kill`; the vocabulary is in the README ("Appending the agentserver's events"). */
  action: string;
  /** A person's sub (`usr_…`), `agent:<name>`, `agt_…`, `svc_…`, `system` or `anonymous`. */
  actor: string;
  outcome: 'success' | 'failure' | 'denied';
  target?: string | null;
  ip?: string | null;
  details?: Record<string, unknown>;
  /** When it happened; default: when append() was called. */
  time?: string | Date;
  /** The idempotency key; generated when absent. */
  event_id?: string;
}

export type DropReason = 'buffer_full' | 'rejected' | 'closed';

export interface DropReport {
  reason: DropReason;
  events: AuditClientEvent[];
  /** For `rejected`: Gatehouse's message naming the field. */
  message?: string;
}

export interface AuditClientOptions {
  /** Gatehouse's issuer URL, e.g. https://id.example.com (also the token's audience). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Default `<issuer>/token`. */
  tokenEndpoint?: string;
  /** Default `<issuer>/audit/events`. */
  eventsEndpoint?: string;
  /** Events per request, 1–100. Default 100. */
  maxBatch?: number;
  /** Send what is buffered at least this often, ms. Default 1000. */
  flushIntervalMs?: number;
  /** Events held at most (sent, in flight or waiting); past it, new events are dropped. Default 10000. */
  maxBuffer?: number;
  /** First retry delay and its cap, ms (doubling). Default 250 and 30000. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Per request, ms. Default 10000. */
  timeoutMs?: number;
  /** Renew the token this long before it expires, seconds. Default 60. */
  tokenRefreshSkewSeconds?: number;
  onDrop?: (report: DropReport) => void;
  /** A failed attempt that will be retried (for logs). */
  onError?: (err: Error) => void;
  fetch?: typeof fetch;
}

export interface AuditClientStats {
  /** Events Gatehouse answered with a seq (repeats of a retried batch counted once). */
  appended: number;
  dropped: number;
  /** Requests sent again after a failure. */
  retries: number;
  tokenFetches: number;
  /** Events waiting or in flight. */
  buffered: number;
}

export interface AuditClient extends EventEmitter<{ drop: [DropReport]; error: [Error] }> {
  /** Buffer one event; returns its event_id, or null when the buffer was full and it was dropped. */
  append(event: AuditClientEvent): string | null;
  /** Resolves once everything appended before the call was sent (or dropped). */
  flush(): Promise<void>;
  /** Flush, waiting at most `timeoutMs` (default 10000); what is left is dropped as `closed`. */
  close(opts?: { timeoutMs?: number }): Promise<void>;
  readonly stats: Readonly<AuditClientStats>;
}

interface Wire {
  event_id: string;
  time: string;
  action: string;
  actor: string;
  outcome: string;
  target?: string | null;
  ip?: string | null;
  details?: Record<string, unknown>;
}

class RetryLater extends Error {
  readonly afterMs: number | null;
  constructor(message: string, afterMs: number | null) {
    super(message);
    this.afterMs = afterMs;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

function retryAfterMs(res: Response): number | null {
  const v = res.headers.get('retry-after');
  if (!v) return null;
  const s = Number(v);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

export function createAuditClient(options: AuditClientOptions): AuditClient {
  const issuer = options.issuer.replace(/\/+$/, '');
  if (!/^https:\/\/|^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:|\/|$)/.test(issuer)) {
    throw new TypeError('issuer must be https (http only on a loopback host)');
  }
  if (!options.clientId || !options.clientSecret) throw new TypeError('clientId and clientSecret are required');
  const maxBatch = Math.min(100, Math.max(1, options.maxBatch ?? 100));
  const flushIntervalMs = options.flushIntervalMs ?? 1000;
  const maxBuffer = Math.max(1, options.maxBuffer ?? 10_000);
  const retryBase = options.retryBaseMs ?? 250;
  const retryMax = options.retryMaxMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const skew = (options.tokenRefreshSkewSeconds ?? 60) * 1000;
  const doFetch = options.fetch ?? fetch;
  const tokenEndpoint = options.tokenEndpoint ?? `${issuer}/token`;
  const eventsEndpoint = options.eventsEndpoint ?? `${issuer}/audit/events`;
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(options.clientId)}:${encodeURIComponent(options.clientSecret)}`).toString('base64')}`;

  const emitter = new EventEmitter<{ drop: [DropReport]; error: [Error] }>();
  const stats: AuditClientStats = { appended: 0, dropped: 0, retries: 0, tokenFetches: 0, buffered: 0 };
  // Every event not yet answered, in order; the head (up to maxBatch) is what is in flight.
  const buffer: { wire: Wire; original: AuditClientEvent }[] = [];
  let appendedCount = 0; // events ever buffered: flush() waits for its own mark
  let doneCount = 0; // events answered or dropped, in order
  let token: { value: string; renewAt: number } | null = null;
  let pumping: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let stopAt: number | null = null;
  const waiters: { mark: number; resolve: () => void }[] = [];

  const report = (r: DropReport) => {
    stats.dropped += r.events.length;
    try {
      options.onDrop?.(r);
    } catch {
      /* a reporting callback must not break the client */
    }
    if (emitter.listenerCount('drop')) emitter.emit('drop', r);
  };
  const failed = (err: Error) => {
    try {
      options.onError?.(err);
    } catch {
      /* ignore */
    }
    if (emitter.listenerCount('error')) emitter.emit('error', err);
  };
  const settle = (count: number) => {
    buffer.splice(0, count);
    doneCount += count;
    stats.buffered = buffer.length;
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.mark <= doneCount) waiters.splice(i, 1)[0]!.resolve();
    }
  };

  async function accessToken(): Promise<string> {
    if (token && Date.now() < token.renewAt) return token.value;
    stats.tokenFetches++;
    const res = await doFetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: issuer }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string };
    if (!res.ok || typeof body.access_token !== 'string') {
      throw new RetryLater(`token request refused: ${res.status} ${body.error ?? ''}`.trim(), retryAfterMs(res));
    }
    const lifetime = (typeof body.expires_in === 'number' ? body.expires_in : 300) * 1000;
    token = { value: body.access_token, renewAt: Date.now() + Math.max(lifetime / 2, lifetime - skew) };
    return token.value;
  }

  /** Send the head of the buffer once. Resolves when it is settled; throws RetryLater otherwise. */
  async function sendOnce(): Promise<void> {
    const batch = buffer.slice(0, maxBatch);
    let renewed = false;
    for (;;) {
      const bearer = await accessToken();
      const res = await doFetch(eventsEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}`, accept: 'application/json' },
        body: JSON.stringify({ events: batch.map((b) => b.wire) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = (await res.json().catch(() => ({}))) as { seq?: number[]; index?: number; error_description?: string };
      if (res.status === 202) {
        stats.appended += batch.length;
        settle(batch.length);
        return;
      }
      if (res.status === 401 && !renewed) {
        // The token may have been revoked with its key, or expired early: one fresh try.
        token = null;
        renewed = true;
        continue;
      }
      if ((res.status === 400 || res.status === 409) && typeof body.index === 'number' && batch[body.index]) {
        // One bad event refuses the batch: drop it, reported, and send the rest.
        const [bad] = buffer.splice(body.index, 1);
        report({ reason: 'rejected', events: [bad!.original], message: body.error_description ?? `refused with ${res.status}` });
        doneCount++;
        settle(0);
        return;
      }
      if (res.status === 400 || res.status === 413 || res.status === 415) {
        // Refused as a whole and not going to change by retrying: drop the batch, reported.
        report({
          reason: 'rejected',
          events: batch.map((d) => d.original),
          message: body.error_description ?? `refused with ${res.status}`,
        });
        settle(batch.length);
        return;
      }
      throw new RetryLater(`POST /audit/events answered ${res.status}: ${body.error_description ?? ''}`.trim(), retryAfterMs(res));
    }
  }

  async function pump(): Promise<void> {
    let attempt = 0;
    while (buffer.length > 0) {
      try {
        await sendOnce();
        attempt = 0;
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        failed(e);
        const backoff = Math.min(retryMax, retryBase * 2 ** attempt) * (0.5 + Math.random() / 2);
        const wait = err instanceof RetryLater && err.afterMs !== null ? Math.min(retryMax, err.afterMs) : backoff;
        attempt++;
        if (stopAt !== null && Date.now() + wait >= stopAt) return;
        stats.retries++;
        await sleep(wait);
        if (stopAt !== null && Date.now() >= stopAt) return;
      }
    }
  }

  function kick(): void {
    if (pumping) return;
    pumping = pump().finally(() => {
      pumping = null;
      if (buffer.length > 0 && stopAt === null) schedule();
    });
  }

  function schedule(): void {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = null;
      kick();
    }, flushIntervalMs);
    timer.unref();
  }

  const client = Object.assign(emitter, {
    append(event: AuditClientEvent): string | null {
      const eventId = event.event_id ?? crypto.randomUUID();
      const time = event.time === undefined ? new Date().toISOString() : new Date(event.time).toISOString();
      const original = { ...event, event_id: eventId };
      if (closed || buffer.length >= maxBuffer) {
        report({ reason: closed ? 'closed' : 'buffer_full', events: [original] });
        return null;
      }
      const wire: Wire = { event_id: eventId, time, action: event.action, actor: event.actor, outcome: event.outcome };
      if (event.target !== undefined) wire.target = event.target;
      if (event.ip !== undefined) wire.ip = event.ip;
      if (event.details !== undefined) wire.details = event.details;
      buffer.push({ wire, original });
      appendedCount++;
      stats.buffered = buffer.length;
      if (buffer.length >= maxBatch) kick();
      else schedule();
      return eventId;
    },
    async flush(): Promise<void> {
      const mark = appendedCount;
      if (doneCount >= mark) return;
      const done = new Promise<void>((resolve) => waiters.push({ mark, resolve }));
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      kick();
      await done;
    },
    async close(opts: { timeoutMs?: number } = {}): Promise<void> {
      closed = true;
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      stopAt = Date.now() + (opts.timeoutMs ?? 10_000);
      const flushing = client.flush();
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([flushing, new Promise<void>((r) => (deadline = setTimeout(r, Math.max(0, stopAt! - Date.now()))))]);
      clearTimeout(deadline);
      await pumping;
      if (buffer.length > 0) {
        report({ reason: 'closed', events: buffer.map((l) => l.original) });
        settle(buffer.length);
      }
    },
  });
  Object.defineProperty(client, 'stats', { get: () => ({ ...stats }), enumerable: true });
  return client as unknown as AuditClient;
}

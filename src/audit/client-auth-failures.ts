// Client-authentication failures at /token (issue 7 §8), audited per client and minute rather
// than per request: a flood of wrong secrets is one row a minute per client it names, not one
// row per guess under the audit lock. Failures naming no registered client share one row, so
// made-up client ids cannot multiply rows either.
import type { AuditSink } from './sink.ts';
import type { Logger } from '../log.ts';

export const AGGREGATE_SECONDS = 60;
const MAX_CLIENTS_PER_WINDOW = 1000;
const MAX_ADDRESSES_SHOWN = 10;

interface Tally {
  failures: number;
  addresses: Set<string>;
}

export class ClientAuthFailures {
  readonly #audit: AuditSink;
  readonly #log: Logger;
  #windowStart = new Date();
  #byClient = new Map<string, Tally>();
  #unknown: Tally = { failures: 0, addresses: new Set() };
  #timer: NodeJS.Timeout | null = null;

  constructor(audit: AuditSink, log: Logger) {
    this.#audit = audit;
    this.#log = log;
  }

  /** A failed client authentication; `clientId` null when no registered client was named. */
  record(clientId: string | null, address: string): void {
    let tally = clientId ? this.#byClient.get(clientId) : this.#unknown;
    if (!tally) {
      if (this.#byClient.size >= MAX_CLIENTS_PER_WINDOW) tally = this.#unknown;
      else this.#byClient.set(clientId!, (tally = { failures: 0, addresses: new Set() }));
    }
    tally.failures++;
    if (tally.addresses.size < MAX_ADDRESSES_SHOWN) tally.addresses.add(address);
  }

  start(intervalMs = AGGREGATE_SECONDS * 1000): void {
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }

  /** One audit event per client that failed since the last flush, and one for unknown clients. */
  async flush(): Promise<void> {
    const windowStart = this.#windowStart.toISOString();
    const windowEnd = new Date().toISOString();
    const tallies = [...this.#byClient].map(([clientId, t]) => ({ clientId, t }) as { clientId: string | null; t: Tally });
    if (this.#unknown.failures) tallies.push({ clientId: null, t: this.#unknown });
    this.#byClient = new Map();
    this.#unknown = { failures: 0, addresses: new Set() };
    this.#windowStart = new Date();
    for (const { clientId, t } of tallies) {
      await this.#audit({
        action: 'client.auth_failure',
        outcome: 'failure',
        actor: 'anonymous',
        target: clientId,
        details: {
          endpoint: 'token',
          failures: t.failures,
          addresses: [...t.addresses],
          window_start: windowStart,
          window_end: windowEnd,
          ...(clientId ? {} : { unknown_client: true }),
        },
      }).catch((err) => this.#log.error({ err: (err as Error).message }, 'client authentication failures not audited'));
    }
  }
}

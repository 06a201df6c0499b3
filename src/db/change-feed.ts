// Every instance keeps caches (client metadata, signing keys). A change bumps a version row in
// the same transaction; each instance polls the versions and drops what went stale. One code
// path for PostgreSQL and PGlite, and a missed notification is impossible by construction.
import { EventEmitter } from 'node:events';
import { type Kysely, type Transaction, sql } from 'kysely';
import type { Database } from './schema.ts';

export type Topic = 'clients' | 'keys' | 'accounts';

export async function bumpVersion(db: Kysely<Database> | Transaction<Database>, topic: Topic): Promise<void> {
  await db
    .insertInto('change_version')
    .values({ topic })
    .onConflict((oc) => oc.column('topic').doUpdateSet({ version: sql`change_version.version + 1` }))
    .execute();
}

export class ChangeFeed extends EventEmitter<{ change: [Topic]; error: [Error] }> {
  #versions = new Map<string, string>();
  #timer: NodeJS.Timeout | null = null;
  #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    super();
    this.#db = db;
  }

  /** Read the versions now and report every topic that moved since the last read. */
  async poll(): Promise<void> {
    const rows = await this.#db.selectFrom('change_version').select(['topic', 'version']).execute();
    for (const { topic, version } of rows) {
      const before = this.#versions.get(topic);
      this.#versions.set(topic, String(version));
      if (before !== undefined && before !== String(version)) this.emit('change', topic as Topic);
    }
  }

  start(intervalMs: number): void {
    const tick = () => {
      this.poll()
        .catch((err: Error) => this.emit('error', err))
        .finally(() => {
          if (this.#timer) this.#timer = setTimeout(tick, intervalMs).unref();
        });
    };
    this.#timer = setTimeout(tick, intervalMs).unref();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

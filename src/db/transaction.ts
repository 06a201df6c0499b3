import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.ts';

/** A query handle: the database, or a transaction a caller already opened. */
export type Q = Kysely<Database> | Transaction<Database>;

/**
 * Run `fn` in a transaction, or in the caller's when `db` already is one: services compose, so
 * a change and its audit event commit or roll back together.
 */
export function inTransaction<T>(db: Q, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db as Transaction<Database>) : db.transaction().execute(fn);
}

import type { Transaction } from 'kysely';
import type { Database } from './schema.ts';
import type { Db } from './handle.ts';

/**
 * Run `fn` in a transaction, or in the caller's when `db` already is one: services compose, so
 * a change and its audit event commit or roll back together.
 */
export function inTransaction<T>(db: Db, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db as Transaction<Database>) : db.transaction().execute(fn);
}

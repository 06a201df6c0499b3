// The one query handle every repository and service takes: the database, or a transaction on it
// (Kysely's Transaction is a Kysely, so a function written for Db composes into a caller's
// transaction). The open connection itself (pool, dialect, close) is a Connection (./connect.ts).
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

// What a command needs: the same configuration and database as the server, no HTTP.
import { loadConfig, type Config } from '../config/config.ts';
import { loadMasterKey } from '../crypto/master-key.ts';
import { createSealer, type Sealer } from '../crypto/seal.ts';
import { openDatabase, type Connection } from '../db/connect.ts';
import { migrateToLatest } from '../db/migrate.ts';
import { type KeyPolicy, type SigningAlg } from '../keys/keys.service.ts';
import { MAX_SIGNED_LIFETIME } from '../oidc/lifetimes.ts';
import type { Transaction } from 'kysely';
import type { AuditEventInput, AuditSink } from '../audit/sink.ts';
import type { Database } from '../db/schema.ts';
import { inTransaction } from '../db/transaction.ts';
import { appendAudit } from '../audit/audit.service.ts';
import { assertMasterKey } from '../keys/master-key.ts';

export interface CliContext {
  config: Config;
  db: Connection;
  /** The master key in force (backups are keyed by it; a rotation replaces it). */
  masterKey: Buffer;
  sealer: Sealer;
  keyPolicy: KeyPolicy;
  /** Record what the command changed in the audit log. */
  audit: AuditSink;
  /** Make a change and record it in one transaction: both commit, or neither. */
  change<T>(work: (trx: Transaction<Database>) => Promise<T>, event: (result: T) => AuditEventInput): Promise<T>;
  close(): Promise<void>;
}

export async function openContext(env: NodeJS.ProcessEnv = process.env): Promise<CliContext> {
  const config = loadConfig(env);
  const masterKey = loadMasterKey(config, (msg) => process.stderr.write(`gatehouse: ${msg}\n`));
  const sealer = createSealer(masterKey);
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrateToLatest(db);
    await assertMasterKey(db.kysely, sealer, masterKey);
  } catch (err) {
    await db.close();
    throw err;
  }
  const algs = [...new Set<SigningAlg>([config.accessTokenAlg, 'RS256'])];
  return {
    config,
    db,
    masterKey,
    sealer,
    keyPolicy: { algs, jwksMaxAgeSeconds: config.jwksMaxAgeSeconds, maxSignedLifetimeSeconds: MAX_SIGNED_LIFETIME },
    audit: async (event) => {
      await appendAudit(db.kysely, event);
    },
    change: (work, event) =>
      inTransaction(db.kysely, async (trx) => {
        const result = await work(trx);
        await appendAudit(trx, event(result)); // last: it takes the audit append lock
        return result;
      }),
    close: () => db.close(),
  };
}

// Shared by the audit tests: a database with signing keys, events, and the superuser's way
// around the append-only triggers (what an attacker with the database's owner role can do).
import crypto from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { appendAuditBatch } from '../../src/audit/audit.service.ts';
import type { AuditEventInput } from '../../src/audit/event.ts';
import { createSealer } from '../../src/crypto/seal.ts';
import type { Database } from '../../src/db/schema.ts';
import { ensureKeys, type KeyPolicy } from '../../src/keys/keys.service.ts';

export const POLICY: KeyPolicy = { algs: ['ES256', 'RS256'], jwksMaxAgeSeconds: 0, maxSignedLifetimeSeconds: 3600 };

export function newMasterKey() {
  const masterKey = crypto.randomBytes(32);
  return { masterKey, sealer: createSealer(masterKey) };
}

export async function withKeys(db: Kysely<Database>) {
  const k = newMasterKey();
  await ensureKeys(db, k.sealer, POLICY);
  return k;
}

export const sample = (i: number, over: Partial<AuditEventInput> = {}): AuditEventInput => ({
  action: i % 2 ? 'signin.failure' : 'signin.success',
  actor: i % 2 ? 'anonymous' : `usr_person${i % 3}`,
  outcome: i % 2 ? 'failure' : 'success',
  ip: `192.0.2.${i % 250}`,
  target: `person${i % 3}@example.com`,
  requestId: `req-${i}`,
  details: { method: 'password', attempt: i },
  ...over,
});

export async function appendMany(db: Kysely<Database>, n: number): Promise<void> {
  await appendAuditBatch(
    db,
    Array.from({ length: n }, (_, i) => sample(i + 1)),
  );
}

/** Run `statements` with the append-only triggers off, as the database superuser can. */
export async function tamper(db: Kysely<Database>, statements: string | string[]): Promise<void> {
  await db.connection().execute(async (conn) => {
    await sql.raw('alter table audit_event disable trigger audit_event_append_only').execute(conn);
    await sql.raw('alter table audit_checkpoint disable trigger audit_checkpoint_append_only').execute(conn);
    try {
      for (const statement of [statements].flat()) await sql.raw(statement).execute(conn);
    } finally {
      await sql.raw('alter table audit_event enable trigger audit_event_append_only').execute(conn);
      await sql.raw('alter table audit_checkpoint enable trigger audit_checkpoint_append_only').execute(conn);
    }
  });
}

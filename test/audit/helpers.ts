// Shared by the audit tests: a database with signing keys, events, and the superuser's way
// around the append-only triggers (what an attacker with the database's owner role can do).
import crypto from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { appendAuditBatch } from '../../src/audit/audit.service.ts';
import { eventHash, exportedRow, type ChainedFields } from '../../src/audit/canonical.ts';
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

/** As the database superuser: every trigger off (the append-only ones included), `work`, back on. */
export async function asSuperuser(db: Kysely<Database>, work: (conn: Kysely<Database>) => Promise<void>): Promise<void> {
  await db.connection().execute(async (conn) => {
    await sql`alter table audit_event disable trigger all`.execute(conn);
    await sql`alter table audit_checkpoint disable trigger all`.execute(conn);
    try {
      await work(conn);
    } finally {
      await sql`alter table audit_event enable trigger all`.execute(conn);
      await sql`alter table audit_checkpoint enable trigger all`.execute(conn);
    }
  });
}

/**
 * Rewrite events from `fromSeq` on: `change` alters the first one, and every hash from there is
 * recomputed, so the chain in the database verifies on its own.
 */
export async function rewriteTail(db: Kysely<Database>, fromSeq: number, change: (row: Record<string, unknown>) => void): Promise<void> {
  const rows = await db.selectFrom('audit_event').selectAll().where('seq', '>=', String(fromSeq)).orderBy('seq').execute();
  await asSuperuser(db, async (conn) => {
    let prev: string | null = null;
    for (const row of rows) {
      const fields = exportedRow(row);
      if (Number(row.seq) === fromSeq) change(fields);
      if (prev !== null) fields.prev_hash = prev;
      const hash = eventHash(fields as unknown as ChainedFields);
      await sql`update audit_event set actor = ${fields.actor as string}, details = ${JSON.stringify(fields.details)}::jsonb,
                prev_hash = ${fields.prev_hash as string}, hash = ${hash} where seq = ${row.seq}`.execute(conn);
      prev = hash;
    }
  });
}

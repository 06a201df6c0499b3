// Audit appends/s: one transaction per event (appendAudit) against group commit (AuditQueue,
// one lock and one insert for whatever queued meanwhile), measured in the same run on the same
// database. Sequential = one caller awaiting each event; concurrent = 50 callers at once, as
// when many sign-ins fail together.
// Run: node bench/audit.ts   (PostgreSQL at TEST_PG_ADMIN_URL or 127.0.0.1:5432, and PGlite)
import { performance } from 'node:perf_hooks';
import { appendAudit, AuditQueue } from '../src/audit/audit.service.ts';
import type { AuditEventInput } from '../src/audit/event.ts';
import { verifyAudit } from '../src/audit/verify.ts';
import type { Connection } from '../src/db/connect.ts';
import { freshDb, type Backend } from '../test/helpers/db.ts';

const event = (i: number): AuditEventInput => ({
  action: 'signin.failure',
  actor: 'anonymous',
  outcome: 'failure',
  ip: '203.0.113.7',
  target: `person${i % 100}@example.com`,
  requestId: `req-${i}`,
  details: { method: 'password', reason: 'wrong_password' },
});

/** Events/s of `n` appends made by `callers` callers each awaiting its own events in turn. */
async function rate(n: number, callers: number, append: (e: AuditEventInput) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < n) await append(event(next++));
    }),
  );
  return (n * 1000) / (performance.now() - start);
}

export interface AuditBenchRow {
  backend: Backend;
  callers: number;
  singlePerSec: number;
  queuedPerSec: number;
}

export interface VerifyBenchRow {
  backend: Backend;
  events: number;
  perSec: number;
}

export async function runAuditBench(
  backends: Backend[] = ['postgres', 'pglite'],
  n = 2000,
): Promise<{ rows: AuditBenchRow[]; verify: VerifyBenchRow[] }> {
  const rows: AuditBenchRow[] = [];
  const verify: VerifyBenchRow[] = [];
  for (const backend of backends) {
    const t = await freshDb(backend);
    try {
      const db: Connection = t.db;
      const queue = new AuditQueue(db.kysely);
      await rate(200, 10, (e) => appendAudit(db.kysely, e)); // warm-up
      for (const callers of [1, 50]) {
        // Take turns and keep each one's best, so neither gains from going first or last.
        let singlePerSec = 0;
        let queuedPerSec = 0;
        for (let round = 0; round < 2; round++) {
          singlePerSec = Math.max(singlePerSec, await rate(n, callers, (e) => appendAudit(db.kysely, e)));
          queuedPerSec = Math.max(queuedPerSec, await rate(n, callers, (e) => queue.append(e)));
        }
        rows.push({ backend, callers, singlePerSec, queuedPerSec });
      }
      const start = performance.now();
      const check = await verifyAudit(db.kysely);
      if (!check.ok) throw new Error(`chain broken after the bench: ${check.reason}`);
      verify.push({ backend, events: check.events, perSec: (check.events * 1000) / (performance.now() - start) });
    } finally {
      // pool.end() resolves before its sockets close; dropping the database `with (force)` at
      // once would kill them mid-close. Close, wait, drop.
      await t.db.close();
      await new Promise((r) => setTimeout(r, 100));
      await t.drop();
    }
  }
  return { rows, verify };
}

if (import.meta.main) {
  console.log(`audit appends, Node ${process.version}; events/s, best of 2 rounds of 2000 events`);
  console.log(`${'backend'.padEnd(9)} ${'callers'.padStart(7)} ${'single tx'.padStart(10)} ${'queued'.padStart(10)}`);
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US').padStart(10);
  const { rows, verify } = await runAuditBench();
  for (const r of rows)
    console.log(`${r.backend.padEnd(9)} ${String(r.callers).padStart(7)} ${fmt(r.singlePerSec)} ${fmt(r.queuedPerSec)}`);
  for (const v of verify) console.log(`verifyAudit on ${v.backend}: ${fmt(v.perSec).trim()} events/s over ${v.events} events`);
}

// Audit appends/s: one transaction per event (appendAudit) against group commit (AuditQueue,
// one lock and one insert for whatever queued meanwhile), measured in the same run on the same
// database. Sequential = one caller awaiting each event; concurrent = 50 callers at once, as
// when many sign-ins fail together.
// Then the agentserver's way in: events/s through POST /audit/events (batches of 100, 4 senders,
// a real Gatehouse listening on a port in this process), on one instance and, on PostgreSQL, on
// two instances sharing the database (the append lock is the database's, so two instances
// contend for it). Its baseline is the queued figure above: the same appends without HTTP,
// token verification and validation.
// Run: node bench/audit.ts   (PostgreSQL at TEST_PG_ADMIN_URL or 127.0.0.1:5432, and PGlite)
import crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { appendAudit, AuditQueue } from '../src/audit/audit.service.ts';
import type { AuditEventInput } from '../src/audit/event.ts';
import { verifyAudit } from '../src/audit/verify.ts';
import type { Connection } from '../src/db/connect.ts';
import { freshDb, type Backend, type TestDb } from '../test/helpers/db.ts';
import { startServer, type TestServer } from '../test/helpers/server.ts';
import { createClient } from '../src/clients/clients.service.ts';
import { openDatabase } from '../src/db/connect.ts';

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

export interface IngestBenchRow {
  backend: Backend;
  instances: number;
  perSec: number;
  batches: number;
}

const ingestEvent = (i: number) => ({
  event_id: crypto.randomUUID(),
  time: new Date().toISOString(),
  action: i % 10 === 0 ? 'agent.error' : 'message.inject',
  actor: i % 10 === 0 ? 'agent:summarizer' : 'usr_bench',
  target: i % 10 === 0 ? null : 'agent:summarizer',
  outcome: i % 10 === 0 ? 'failure' : 'success',
  details: i % 10 === 0 ? { error_type: 'llm_timeout', thread_id: `t-${i % 97}` } : { thread_id: `t-${i % 97}` },
});

/** Events/s of `n` events in batches of 100, `senders` at once, spread over `urls`. */
async function ingestRate(urls: string[], bearer: string, n: number, senders = 4): Promise<{ perSec: number; batches: number }> {
  let next = 0;
  let batches = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: senders }, async (_, k) => {
      const url = urls[k % urls.length]!;
      while (next < n) {
        const events = Array.from({ length: Math.min(100, n - next) }, () => ingestEvent(next++));
        const res = await fetch(`${url}/audit/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
          body: JSON.stringify({ events }),
        });
        if (res.status !== 202) throw new Error(`POST /audit/events answered ${res.status}: ${await res.text()}`);
        await res.arrayBuffer().catch(() => undefined);
        batches++;
      }
    }),
  );
  return { perSec: (n * 1000) / (performance.now() - start), batches };
}

export async function runIngestBench(backends: Backend[] = ['postgres', 'pglite'], n = 5000): Promise<IngestBenchRow[]> {
  const rows: IngestBenchRow[] = [];
  for (const backend of backends) {
    const env = { LOG_LEVEL: 'warn', GATEHOUSE_AUDIT_INGEST_LIMIT: '10000000' };
    const s: TestServer = await startServer(backend, env);
    let second: TestServer | null = null;
    try {
      const client = await createClient(s.gatehouse.db.kysely, {
        name: 'bench',
        grants: ['client_credentials'],
        permissions: ['audit:append'],
      });
      const tok = await fetch(`${s.url}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: s.url }),
      });
      const bearer = ((await tok.json()) as { access_token: string }).access_token;
      await ingestRate([s.url], bearer, 500); // warm-up
      const one = await ingestRate([s.url], bearer, n);
      rows.push({ backend, instances: 1, ...one });
      if (backend === 'postgres' && s.testDb.url) {
        // A second instance on the same database, its own pool, the same issuer and master key.
        const db = await openDatabase({ databaseUrl: s.testDb.url, dataDir: '' });
        const testDb: TestDb = { db, url: s.testDb.url, drop: async () => {} };
        second = await startServer(
          backend,
          { ...env, GATEHOUSE_ISSUER: s.url, GATEHOUSE_MASTER_KEY: s.env.GATEHOUSE_MASTER_KEY! },
          { testDb },
        );
        const secondUrl = `http://localhost:${second.env.PORT}`;
        await ingestRate([secondUrl], bearer, 200); // warm-up
        const two = await ingestRate([s.url, secondUrl], bearer, n);
        rows.push({ backend, instances: 2, ...two });
      }
      const check = await verifyAudit(s.gatehouse.db.kysely);
      if (!check.ok) throw new Error(`chain broken after the ingestion bench: ${check.reason}`);
    } finally {
      await second?.close();
      await s.close();
    }
  }
  return rows;
}

export function formatIngestRows(rows: IngestBenchRow[], baseline: AuditBenchRow[]): string {
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US').padStart(10);
  const lines = [
    `${'backend'.padEnd(9)} ${'instances'.padStart(9)} ${'API ev/s'.padStart(10)} ${'queued ev/s'.padStart(12)} ${'ratio'.padStart(6)}`,
  ];
  for (const r of rows) {
    const base = Math.max(...baseline.filter((b) => b.backend === r.backend).map((b) => b.queuedPerSec), 0);
    lines.push(
      `${r.backend.padEnd(9)} ${String(r.instances).padStart(9)} ${fmt(r.perSec)} ${fmt(base).padStart(12)} ${(base ? r.perSec / base : 0).toFixed(2).padStart(6)}`,
    );
  }
  return lines.join('\n');
}

if (import.meta.main) {
  console.log(`audit appends, Node ${process.version}; events/s, best of 2 rounds of 2000 events`);
  console.log(`${'backend'.padEnd(9)} ${'callers'.padStart(7)} ${'single tx'.padStart(10)} ${'queued'.padStart(10)}`);
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US').padStart(10);
  const { rows, verify } = await runAuditBench();
  for (const r of rows)
    console.log(`${r.backend.padEnd(9)} ${String(r.callers).padStart(7)} ${fmt(r.singlePerSec)} ${fmt(r.queuedPerSec)}`);
  for (const v of verify) console.log(`verifyAudit on ${v.backend}: ${fmt(v.perSec).trim()} events/s over ${v.events} events`);
  console.log('\nPOST /audit/events, batches of 100, 4 senders; baseline: the queued appends above (no HTTP)');
  console.log(formatIngestRows(await runIngestBench(), rows));
}

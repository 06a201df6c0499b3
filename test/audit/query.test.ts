// Reading the log for the admin UI: filters, newest first, keyset pages.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit } from '../../src/audit/audit.service.ts';
import { listAudit } from '../../src/audit/query.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';

describe.each(BACKENDS)('listAudit on %s', (backend) => {
  let t: TestDb;
  let middle: string;

  beforeAll(async () => {
    t = await freshDb(backend);
    const db = t.db.kysely;
    await appendAudit(db, {
      action: 'signin.failure',
      actor: 'anonymous',
      outcome: 'failure',
      ip: '203.0.113.9',
      target: 'ada@example.com',
      details: { method: 'password' },
    });
    await appendAudit(db, {
      action: 'signin.success',
      actor: 'usr_ada',
      outcome: 'success',
      ip: '203.0.113.9',
      target: 'usr_ada',
      details: { method: 'passkey' },
    });
    await appendAudit(db, { action: 'client.create', actor: 'usr_ada', outcome: 'success', target: 'svc_ingest' });
    await new Promise((r) => setTimeout(r, 20));
    middle = (await appendAudit(db, { action: 'client.secret_rotate', actor: 'cli', outcome: 'success', target: 'svc_ingest' })).time;
    await new Promise((r) => setTimeout(r, 20));
    await appendAudit(db, {
      action: 'user.role_change',
      actor: 'usr_ada',
      outcome: 'denied',
      target: 'usr_bob',
      details: { from: 'viewer', to: 'owner' },
    });
    await appendAudit(db, {
      action: 'signin.failure',
      actor: 'anonymous',
      outcome: 'failure',
      ip: '198.51.100.1',
      target: 'bob@example.com',
    });
    await appendAudit(db, {
      action: 'ratelimit.trip',
      actor: 'system',
      outcome: 'denied',
      ip: '198.51.100.1',
      details: { limit: 'signin_per_ip' },
    });
  });
  afterAll(() => t.drop());

  const seqs = async (q: Parameters<typeof listAudit>[1]) => (await listAudit(t.db.kysely, q)).events.map((e) => e.seq);

  it('lists newest first, with every field', async () => {
    const page = await listAudit(t.db.kysely);
    expect(page.events.map((e) => e.seq)).toEqual([7, 6, 5, 4, 3, 2, 1]);
    expect(page.nextBeforeSeq).toBeNull();
    expect(page.events[2]).toMatchObject({
      seq: 5,
      action: 'user.role_change',
      actor: 'usr_ada',
      outcome: 'denied',
      target: 'usr_bob',
      ip: null,
      details: { from: 'viewer', to: 'owner' },
    });
  });

  it('filters by action, actor, target, outcome and time', async () => {
    expect(await seqs({ action: 'signin.failure' })).toEqual([6, 1]);
    expect(await seqs({ actor: 'usr_ada' })).toEqual([5, 3, 2]);
    expect(await seqs({ target: 'svc_ingest' })).toEqual([4, 3]);
    expect(await seqs({ outcome: 'denied' })).toEqual([7, 5]);
    expect(await seqs({ actor: 'anonymous', outcome: 'failure', target: 'bob@example.com' })).toEqual([6]);
    expect(await seqs({ since: middle })).toEqual([7, 6, 5, 4]);
    expect(await seqs({ until: middle })).toEqual([3, 2, 1]);
    expect(await seqs({ since: new Date(middle), until: new Date(Date.parse(middle) + 1) })).toEqual([4]);
    expect(await seqs({ action: "signin.failure' or 1=1 --" })).toEqual([]);
  });

  it('pages with a keyset on seq', async () => {
    const p1 = await listAudit(t.db.kysely, { limit: 3 });
    expect(p1.events.map((e) => e.seq)).toEqual([7, 6, 5]);
    expect(p1.nextBeforeSeq).toBe(5);
    const p2 = await listAudit(t.db.kysely, { limit: 3, beforeSeq: p1.nextBeforeSeq! });
    expect(p2.events.map((e) => e.seq)).toEqual([4, 3, 2]);
    const p3 = await listAudit(t.db.kysely, { limit: 3, beforeSeq: p2.nextBeforeSeq! });
    expect(p3.events.map((e) => e.seq)).toEqual([1]);
    expect(p3.nextBeforeSeq).toBeNull();
    // Query-string values pass through as they come.
    expect((await listAudit(t.db.kysely, { limit: '2', beforeSeq: '3' } as never)).events.map((e) => e.seq)).toEqual([2, 1]);
    expect(await seqs({ actor: 'anonymous', limit: 1 })).toEqual([6]);
  });

  it('refuses a page larger than 200 and malformed filters', async () => {
    await expect(listAudit(t.db.kysely, { limit: 201 })).rejects.toThrow(/audit query limit/);
    await expect(listAudit(t.db.kysely, { outcome: 'maybe' as never })).rejects.toThrow(/audit query outcome/);
    await expect(listAudit(t.db.kysely, { since: 'yesterday' })).rejects.toThrow(/audit query since/);
    await expect(listAudit(t.db.kysely, { seq: 1 } as never)).rejects.toThrow(/Unrecognized key/);
  });
});

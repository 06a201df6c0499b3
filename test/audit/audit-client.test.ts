// gatehouse/audit-client against a real Gatehouse, as the agentserver runs it: batching, one
// token for many batches, a retry after an answer lost on the way back (the events are appended
// once), a full buffer reporting what it dropped, an invalid event dropped and reported while
// the rest of its batch goes in. Both databases.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createAuditClient, type DropReport } from '../../src/audit-client/index.ts';
import { listAudit } from '../../src/audit/query.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { revokeKey } from '../../src/keys/revoke.ts';
import { BACKENDS } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const inject = (i: number) => ({
  action: 'message.inject',
  actor: 'usr_alice',
  target: 'agent:summarizer',
  outcome: 'success' as const,
  details: { thread_id: `t-${i}` },
});

/** Forwards to Gatehouse; `loseNextAnswer` swaps the next /audit/events answer for a 503 after Gatehouse has handled it. */
async function lossyProxy(target: string) {
  const seen: string[] = [];
  let lose = 0;
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
    });
    const body = Buffer.from(await upstream.arrayBuffer());
    seen.push(`${req.method} ${req.url} ${upstream.status}`);
    if (req.url === '/audit/events' && lose > 0) {
      lose--;
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end('{"error":"temporarily_unavailable"}');
      return;
    }
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    loseNextAnswer: () => lose++,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe.each(BACKENDS)('gatehouse/audit-client on %s', (backend) => {
  let s: TestServer;
  let producer: { client_id: string; client_secret?: string };
  const options = () => ({ issuer: s.url, clientId: producer.client_id, clientSecret: producer.client_secret! });

  async function bySource() {
    return (await listAudit(s.gatehouse.db.kysely, { source: producer.client_id, limit: 200 })).events;
  }

  beforeAll(async () => {
    s = await startServer(backend);
    producer = await createClient(s.gatehouse.db.kysely, {
      name: 'agentserver',
      grants: ['client_credentials'],
      permissions: ['audit:append'],
    });
  });
  afterAll(() => s?.close());

  it('appends in batches with one cached token; event_ids generated, order kept', async () => {
    const client = createAuditClient({ ...options(), maxBatch: 4, flushIntervalMs: 20 });
    const ids = Array.from({ length: 10 }, (_, i) => client.append(inject(i)));
    expect(ids.every((id) => /^[0-9a-f-]{36}$/.test(id!))).toBe(true);
    await client.flush();
    expect(client.stats).toMatchObject({ appended: 10, dropped: 0, tokenFetches: 1, buffered: 0 });
    const events = (await bySource()).filter((e) => ids.includes(e.eventId));
    // Newest first: the seqs follow the order of append.
    expect(events.map((e) => e.eventId).reverse()).toEqual(ids);
    await client.close();
  });

  it('retries a batch whose answer was lost with the same event_ids: appended once', async () => {
    const proxy = await lossyProxy(s.url);
    const errors: Error[] = [];
    const client = createAuditClient({
      ...options(),
      tokenEndpoint: `${proxy.url}/token`,
      eventsEndpoint: `${proxy.url}/audit/events`,
      flushIntervalMs: 10,
      onError: (e) => errors.push(e),
    });
    try {
      proxy.loseNextAnswer();
      const ids = [
        client.append(inject(100)),
        client.append(inject(101)),
        client.append({ ...inject(102), event_id: crypto.randomUUID() }),
      ];
      await client.flush();
      expect(proxy.seen.filter((l) => l.startsWith('POST /audit/events'))).toEqual(['POST /audit/events 202', 'POST /audit/events 202']);
      expect(client.stats).toMatchObject({ appended: 3, retries: 1, dropped: 0 });
      expect(errors[0]!.message).toMatch(/503/);
      const stored = (await bySource()).filter((e) => ids.includes(e.eventId));
      expect(stored).toHaveLength(3);
      expect(await verifyAudit(s.gatehouse.db.kysely)).toMatchObject({ ok: true });
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it('reports what a full buffer drops, by callback, event and counter; the rest goes in', async () => {
    const drops: DropReport[] = [];
    const emitted: DropReport[] = [];
    const client = createAuditClient({ ...options(), maxBuffer: 5, flushIntervalMs: 60_000, onDrop: (d) => drops.push(d) });
    client.on('drop', (d) => emitted.push(d));
    const ids = Array.from({ length: 8 }, (_, i) => client.append(inject(200 + i)));
    expect(ids.filter((id) => id === null)).toHaveLength(3);
    expect(drops.map((d) => d.reason)).toEqual(['buffer_full', 'buffer_full', 'buffer_full']);
    expect(drops.map((d) => d.events[0]!.details!.thread_id)).toEqual(['t-205', 't-206', 't-207']);
    expect(emitted).toHaveLength(3);
    expect(client.stats).toMatchObject({ dropped: 3, buffered: 5 });
    await client.flush();
    expect(client.stats).toMatchObject({ appended: 5, dropped: 3, buffered: 0 });
    await client.close();
  });

  it('drops an event Gatehouse refuses, reporting its message, and appends the others of its batch', async () => {
    const drops: DropReport[] = [];
    const client = createAuditClient({ ...options(), flushIntervalMs: 10, onDrop: (d) => drops.push(d) });
    const before = (await bySource()).length;
    client.append(inject(300));
    client.append({ action: 'message.inject', actor: 'usr_alice', target: 'agent:summarizer', outcome: 'success' }); // no thread_id
    client.append({ ...inject(302), details: { thread_id: 't-302', api_key: 'sk-live-123' } });
    client.append(inject(303));
    await client.flush();
    expect(drops.map((d) => [d.reason, d.message])).toEqual([
      ['rejected', expect.stringMatching(/^events\[1\]\.details\.thread_id: /)],
      ['rejected', expect.stringMatching(/^events\[1\]\.details\.api_key: /)],
    ]);
    expect(client.stats).toMatchObject({ appended: 2, dropped: 2 });
    expect((await bySource()).length).toBe(before + 2);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from audit_event where details::text like '%sk-live%'`.execute(
      s.gatehouse.db.kysely,
    );
    expect(rows[0]!.n).toBe(0);
    await client.close();
  });

  it('renews its cached token when Gatehouse refuses it (its signing key revoked), and goes on', async () => {
    const client = createAuditClient({ ...options(), flushIntervalMs: 10 });
    client.append(inject(500));
    await client.flush();
    expect(client.stats).toMatchObject({ appended: 1, tokenFetches: 1 });
    client.append(inject(501));
    await client.flush();
    expect(client.stats.tokenFetches).toBe(1); // cached
    const kid = s.gatehouse.keys().currentKid[s.gatehouse.config.accessTokenAlg as 'ES256']!;
    await revokeKey(s.gatehouse.db.kysely, s.gatehouse.sealer, s.gatehouse.keyPolicy, { kid });
    await s.gatehouse.refresh();
    client.append(inject(502));
    await client.flush();
    expect(client.stats).toMatchObject({ appended: 3, tokenFetches: 2, dropped: 0, retries: 0 });
    await client.close();
  });

  it('close() gives up after its timeout when Gatehouse cannot be reached, reporting what is left', async () => {
    const drops: DropReport[] = [];
    const client = createAuditClient({
      ...options(),
      eventsEndpoint: 'http://127.0.0.1:9/audit/events',
      retryBaseMs: 50,
      onDrop: (d) => drops.push(d),
    });
    client.append(inject(400));
    client.append(inject(401));
    await client.close({ timeoutMs: 300 });
    expect(drops).toEqual([{ reason: 'closed', events: [expect.objectContaining({ action: 'message.inject' }), expect.anything()] }]);
    expect(client.stats).toMatchObject({ appended: 0, dropped: 2, buffered: 0 });
    expect(client.append(inject(402))).toBeNull();
  });
});

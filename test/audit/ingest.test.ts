// POST /audit/events as the agentserver uses it: a real Gatehouse, a client created with
// --permission audit:append, a client-credentials token requested for the issuer, batches over
// HTTP; the chain then verifies with Gatehouse's own events and the ingested ones mixed, and
// auditors find them by source in the console and the CLI. Both databases.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import { listAudit } from '../../src/audit/query.ts';
import { verifyAudit } from '../../src/audit/verify.ts';
import { writeCheckpoint } from '../../src/audit/checkpoint.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { gatehouse } from '../helpers/cli.ts';
import { BACKENDS } from '../helpers/db.ts';
import { HttpAgent } from '../helpers/http-signin.ts';
import { adminOverHttp, signInOverHttp } from '../helpers/people.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

const AGENTS = 'https://agents.example.com';

function basic(id: string, secret: string) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function token(url: string, client: { client_id: string; client_secret?: string }, resource?: string) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', ...(resource ? { resource } : {}) });
  const res = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(client.client_id, client.client_secret!) },
    body,
  });
  return { status: res.status, json: (await res.json()) as any };
}

async function post(url: string, bearer: string | null, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/audit/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, headers: res.headers };
}

/** One event of each kind in the agentserver's notes, with a fresh event_id. */
function agentserverEvents(person: string) {
  const t = () => new Date().toISOString();
  return [
    {
      event_id: crypto.randomUUID(),
      time: t(),
      action: 'auth.failure',
      actor: 'anonymous',
      outcome: 'failure',
      ip: '203.0.113.9',
      details: { method: 'api_key' },
    },
    {
      event_id: crypto.randomUUID(),
      time: t(),
      action: 'config.change',
      actor: person,
      target: 'config:routing',
      outcome: 'success',
      details: { before_hash: `sha256:${'a'.repeat(64)}`, after_hash: `sha256:${'b'.repeat(64)}` },
    },
    { event_id: crypto.randomUUID(), time: t(), action: 'control.pause', actor: person, target: 'agent:summarizer', outcome: 'success' },
    { event_id: crypto.randomUUID(), time: t(), action: 'control.kill', actor: person, target: 'thread:t-42', outcome: 'denied' },
    {
      event_id: crypto.randomUUID(),
      time: t(),
      action: 'message.inject',
      actor: person,
      target: 'agent:summarizer',
      outcome: 'success',
      details: { thread_id: 't-42' },
    },
    {
      event_id: crypto.randomUUID(),
      time: t(),
      action: 'agent.error',
      actor: 'agent:summarizer',
      outcome: 'failure',
      details: { error_type: 'llm_timeout', thread_id: 't-42' },
    },
    {
      event_id: crypto.randomUUID(),
      time: t(),
      action: 'custom.deploy.finished',
      actor: 'system',
      outcome: 'success',
      details: { version: '1.4.2' },
    },
  ];
}

async function count(s: TestServer): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from audit_event`.execute(s.gatehouse.db.kysely);
  return rows[0]!.n;
}

describe.each(BACKENDS)('audit ingestion on %s', (backend) => {
  let s: TestServer;
  let producer: { client_id: string; client_secret?: string };
  let other: { client_id: string; client_secret?: string };
  let bearer: string;

  beforeAll(async () => {
    s = await startServer(backend);
    producer = await createClient(s.gatehouse.db.kysely, {
      name: 'agentserver audit',
      grants: ['client_credentials'],
      permissions: ['audit:append'],
    });
    other = await createClient(s.gatehouse.db.kysely, {
      name: 'summarizer-bot',
      grants: ['client_credentials'],
      roles: ['admin'],
      permissions: ['agent:*:inject'],
    });
    const t = await token(s.url, producer, s.url);
    expect(t.status, JSON.stringify(t.json)).toBe(200);
    bearer = t.json.access_token;
  });
  afterAll(() => s?.close());

  it('gives a token for the issuer only to a client holding audit:append', async () => {
    const claims = decodeJwt(bearer);
    expect(claims).toMatchObject({ aud: s.url, sub: producer.client_id, client_id: producer.client_id, permissions: ['audit:append'] });
    expect(claims.scope).toBeUndefined();
    // Without resource: the agentserver's audience, as before.
    const usual = await token(s.url, producer);
    expect(decodeJwt(usual.json.access_token).aud).toBe(AGENTS);
    // Another client, even an admin one, cannot get a token for the issuer.
    const refused = await token(s.url, other, s.url);
    expect(refused.status).toBe(400);
    expect(refused.json.error).toBe('invalid_target');
  });

  it('appends a batch in order, answers 202 with the seqs, marks each event with its source', async () => {
    const before = await count(s);
    const events = agentserverEvents('usr_alice');
    const r = await post(s.url, bearer, { events });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    expect(r.json.seq).toEqual(events.map((_, i) => before + 1 + i));
    const page = await listAudit(s.gatehouse.db.kysely, { source: producer.client_id, limit: 50 });
    const byId = new Map(page.events.map((e) => [e.eventId, e]));
    for (const [i, e] of events.entries()) {
      const got = byId.get(e.event_id)!;
      expect(got).toMatchObject({
        seq: r.json.seq[i],
        source: producer.client_id,
        action: e.action,
        actor: e.actor,
        outcome: e.outcome,
        producerTime: e.time,
        target: e.target ?? null,
        details: e.details ?? {},
      });
      expect(got.requestId).toBe(r.headers.get('x-request-id'));
    }
    // Gatehouse's own clock beside the producer's.
    expect(Math.abs(Date.parse(byId.get(events[0]!.event_id)!.time) - Date.parse(events[0]!.time))).toBeLessThan(60_000);
  });

  it('a retried batch never appends twice: a repeat answers the first seq, new events get new ones', async () => {
    const events = agentserverEvents('usr_bob').slice(0, 3);
    const first = await post(s.url, bearer, { events });
    expect(first.status).toBe(202);
    const n = await count(s);
    const again = await post(s.url, bearer, { events });
    expect(again.status).toBe(202);
    expect(again.json.seq).toEqual(first.json.seq);
    expect(await count(s)).toBe(n);
    // Half old, half new: in the order sent, the old ones answering their first seq.
    const fresh = agentserverEvents('usr_bob').slice(3, 5);
    const mixed = await post(s.url, bearer, { events: [fresh[0], events[1], fresh[1]] });
    expect(mixed.status).toBe(202);
    expect(mixed.json.seq).toEqual([n + 1, first.json.seq[1], n + 2]);
    // The same event_id with different content is not the same event: refused, nothing appended.
    const changed = await post(s.url, bearer, { events: [{ ...events[2], outcome: 'failure' }] });
    expect(changed.status).toBe(409);
    expect(changed.json).toMatchObject({ index: 0, field: 'events[0].event_id' });
    expect(await count(s)).toBe(n + 2);
    // Parallel retries of one batch, as two instances or a timeout-happy client would send them.
    const batch = agentserverEvents('usr_carol');
    const answers = await Promise.all(Array.from({ length: 5 }, () => post(s.url, bearer, { events: batch })));
    for (const a of answers) expect(a.json.seq).toEqual(answers[0]!.json.seq);
    expect(await count(s)).toBe(n + 2 + batch.length);
  });

  it('a bad event fails the whole batch, named by index and field; nothing is half-appended', async () => {
    const n = await count(s);
    const good = agentserverEvents('usr_dave');
    const cases: Array<[unknown, string]> = [
      [{ ...good[4], details: {} }, 'events[1].details.thread_id'],
      [{ ...good[1], details: { before_hash: 'x', after_hash: `sha256:${'b'.repeat(64)}` } }, 'events[1].details.before_hash'],
      [{ ...good[2], target: undefined }, 'events[1].target'],
      [{ ...good[2], action: 'control.explode' }, 'events[1].action'],
      [{ ...good[2], actor: 'root; drop table' }, 'events[1].actor'],
      [{ ...good[2], event_id: 'not-a-uuid' }, 'events[1].event_id'],
      [{ ...good[2], time: '2026-12-01 17:00' }, 'events[1].time'],
      [{ ...good[2], sneaky: true }, 'events[1].sneaky'],
      ['an event', 'events[1]'],
    ];
    for (const [bad, field] of cases) {
      const r = await post(s.url, bearer, { events: [good[0], bad, good[5]] });
      expect(r.status, field).toBe(400);
      expect(r.json).toMatchObject({ error: 'invalid_request', index: field === 'events[1]' ? 1 : 1, field });
      expect(r.json.error_description).toMatch(new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}: `));
    }
    expect(await count(s)).toBe(n);
    // The good events of a refused batch were not appended: sent alone they get fresh seqs.
    const ok = await post(s.url, bearer, { events: [good[0], good[5]] });
    expect(ok.json.seq).toEqual([n + 1, n + 2]);
  });

  it('refuses secret-looking details, keys and values, like Gatehouse own events', async () => {
    const n = await count(s);
    const [e] = agentserverEvents('usr_erin').slice(2, 3);
    const jwt = `eyJhbGciOiJFUzI1NiJ9.${Buffer.from('{"sub":"x"}').toString('base64url')}.c2ln`;
    for (const [details, field] of [
      [{ api_key: 'abc' }, 'events[0].details.api_key'],
      [{ note: { refreshToken: 'x' } }, 'events[0].details.note.refreshToken'],
      [{ header: jwt }, 'events[0].details.header'],
      [{ uri: 'otpauth://totp/x?secret=ABC' }, 'events[0].details.uri'],
    ] as const) {
      const r = await post(s.url, bearer, { events: [{ ...e, details }] });
      expect(r.status).toBe(400);
      expect(r.json.field).toBe(field);
      expect(r.json.error_description).toMatch(/secret|credential/);
    }
    const target = await post(s.url, bearer, { events: [{ ...e, target: jwt }] });
    expect(target.json.field).toBe('events[0].target');
    expect(await count(s)).toBe(n);
    expect(s.logs.join('')).not.toContain(jwt);
  });

  it('refuses an empty or oversized batch, a body that is not JSON, and answers 405 to other methods', async () => {
    const events = Array.from({ length: 101 }, () => agentserverEvents('usr_x')[2]);
    const big = await post(s.url, bearer, { events });
    expect(big.status).toBe(400);
    expect(big.json).toMatchObject({ field: 'events' });
    expect(big.json.error_description).toMatch(/at most 100/);
    expect((await post(s.url, bearer, { events: [] })).json.error_description).toMatch(/at least one/);
    expect((await post(s.url, bearer, { event: [] })).status).toBe(400);
    expect((await post(s.url, bearer, '{"events": [')).status).toBe(400);
    const form = await post(s.url, bearer, 'events=1', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    const huge = await post(s.url, bearer, { events: [{ ...events[0], details: { pad: 'x'.repeat(600 * 1024) } }] });
    expect(huge.status).toBe(413);
    expect((await fetch(`${s.url}/audit/events`)).status).toBe(405);
  });

  it('refuses a token for the agentserver audience, a missing or forged token, with RFC 6750 challenges', async () => {
    const n = await count(s);
    const events = agentserverEvents('usr_frank').slice(2, 3);
    const forAgents = (await token(s.url, producer)).json.access_token;
    const wrong = await post(s.url, forAgents, { events });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Bearer realm="gatehouse", error="invalid_token"/);
    expect(wrong.json.error_description).toMatch(/not for Gatehouse/);
    const none = await post(s.url, null, { events });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
    const [h, p] = bearer.split('.');
    const forged = await post(s.url, `${h}.${p}.${Buffer.from('nope').toString('base64url')}`, { events });
    expect(forged.status).toBe(401);
    expect(forged.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    expect(await count(s)).toBe(n);
  });

  it('a person cannot get an issuer token: the authorization request is refused with invalid_target', async () => {
    const person = await createPerson(s, `p-${crypto.randomUUID().slice(0, 8)}@example.com`, 'owner');
    const port = await freePort();
    const app = await createClient(s.gatehouse.db.kysely, {
      name: 'console',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [`http://127.0.0.1:${port}/callback`],
    });
    const rp: RelyingParty = await startRelyingParty(s.url, app, port);
    try {
      const flow = await rp.start({ resource: s.url });
      const a = new HttpAgent(s.url);
      const first = await a.follow(await a.request(flow.url));
      // Refused before any sign-in page: straight back to the application with the error.
      const landed: URL = first.location ? new URL(first.location) : new URL((await signInOverHttp(a, first, person)).location!);
      if (landed.searchParams.get('code')) {
        // Refused at the code exchange at the latest.
        await expect(rp.finish(landed, flow)).rejects.toMatchObject({ error: 'invalid_target' });
      } else {
        expect(landed.searchParams.get('error')).toBe('invalid_target');
      }
    } finally {
      await rp.close();
    }
  });

  it('audit verify passes on a chain mixing Gatehouse events and ingested ones, across a checkpoint', async () => {
    // Gatehouse's own events around the ingested ones: a failed sign-in, a client created.
    await createClient(s.gatehouse.db.kysely, { name: 'noise', grants: ['client_credentials'] });
    await s.gatehouse.auditQueue.append({ action: 'signin.failure', actor: 'anonymous', outcome: 'failure', ip: '192.0.2.1' });
    await post(s.url, bearer, { events: agentserverEvents('usr_gina') });
    await writeCheckpoint(s.gatehouse.db.kysely, s.gatehouse.sealer);
    await post(s.url, bearer, { events: agentserverEvents('usr_gina') });
    await s.gatehouse.auditQueue.append({ action: 'signin.failure', actor: 'anonymous', outcome: 'failure', ip: '192.0.2.2' });
    const v = await verifyAudit(s.gatehouse.db.kysely);
    expect(v).toMatchObject({ ok: true, events: await count(s), checkpoints: 1 });
    const { rows } = await sql<{ own: number; ingested: number }>`
      select count(*) filter (where source is null)::int as own, count(*) filter (where source is not null)::int as ingested
      from audit_event`.execute(s.gatehouse.db.kysely);
    expect(rows[0]!.own).toBeGreaterThan(0);
    expect(rows[0]!.ingested).toBeGreaterThan(0);
  });

  it('counts ingested events by source and action for Prometheus', async () => {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    const line = (action: string) =>
      new RegExp(
        `^gatehouse_audit_ingested_events_total\\{source="${producer.client_id}",action="${action.replace('.', '\\.')}",outcome="\\w+"\\} (\\d+)`,
        'm',
      );
    expect(text).toMatch(line('agent.error'));
    expect(text).toMatch(line('custom'));
    expect(text).not.toMatch(/action="custom\.deploy/);
  });

  it('auditors filter by source in the console', async () => {
    const auditor: TestPerson = await createPerson(s, `aud-${crypto.randomUUID().slice(0, 8)}@example.com`, 'auditor');
    const { agent } = await adminOverHttp(s, auditor);
    const page = await agent.request(`/admin/audit?source=${producer.client_id}&action=message.inject`);
    expect(page.status).toBe(200);
    expect(page.text).toContain(`value="${producer.client_id}"`);
    const rows = [...page.text.matchAll(/<tr data-seq="(\d+)">[\s\S]*?<\/tr>/g)].map((m) => m[0]);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row).toContain('message.inject');
      expect(row).toContain(producer.client_id);
    }
    expect(page.text).toContain('data-chain="ok"');
  });
});

describe.each(BACKENDS)('audit ingestion limits on %s (the issuer as the default audience)', (backend) => {
  let s: TestServer;
  let producer: { client_id: string; client_secret?: string };
  let plain: { client_id: string; client_secret?: string };

  beforeAll(async () => {
    // GATEHOUSE_AUDIENCE unset: every token names the issuer, so only the permission keeps other tokens out.
    s = await startServer(backend, { GATEHOUSE_AUDIENCE: '', GATEHOUSE_AUDIT_INGEST_LIMIT: '20' }, { auditQueueMax: 10 });
    producer = await createClient(s.gatehouse.db.kysely, { name: 'p', grants: ['client_credentials'], permissions: ['audit:append'] });
    plain = await createClient(s.gatehouse.db.kysely, { name: 'q', grants: ['client_credentials'], roles: ['owner'] });
  });
  afterAll(() => s?.close());

  it('refuses a token without audit:append with 403 insufficient_scope', async () => {
    const t = await token(s.url, plain);
    expect(decodeJwt(t.json.access_token).aud).toBe(s.url);
    const r = await post(s.url, t.json.access_token, { events: agentserverEvents('usr_h').slice(2, 3) });
    expect(r.status).toBe(403);
    expect(r.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
  });

  it('answers 503 with Retry-After when the append queue has no room, and 429 over the per-client budget', async () => {
    const bearer = (await token(s.url, producer, s.url)).json.access_token;
    const full = await post(s.url, bearer, { events: agentserverEvents('usr_i').concat(agentserverEvents('usr_i')) }); // 14 > 10
    expect(full.status).toBe(503);
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
    // 14 of 20 points spent by the refused batch: 7 more are over budget.
    const over = await post(s.url, bearer, { events: agentserverEvents('usr_i') });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    const trips = await listAudit(s.gatehouse.db.kysely, { action: 'ratelimit.trip', limit: 5 });
    expect(trips.events.filter((e) => e.details.endpoint === 'audit_events')).toHaveLength(1);
  });
});

describe('gatehouse clients create --permission audit:append and audit list --source (PostgreSQL, the bin)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('postgres');
  });
  afterAll(() => s?.close());

  it('creates the client, appends through the API, lists by source and verifies', async () => {
    const created = await gatehouse(
      ['clients', 'create', '--name', 'agentserver', '--grant', 'client_credentials', '--permission', 'audit:append', '--json'],
      s.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const client = JSON.parse(created.stdout);
    const refused = await gatehouse(
      ['users', 'invite', '--email', 'x@example.com', '--role', 'viewer', '--permission', 'audit:append'],
      s.env,
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/service client permission/);
    await s.gatehouse.refresh();
    const bearer = (await token(s.url, client, s.url)).json.access_token;
    const events = agentserverEvents('usr_jo');
    const r = await post(s.url, bearer, { events });
    expect(r.status).toBe(202);
    const list = await gatehouse(['audit', 'list', '--source', client.client_id, '--json'], s.env);
    expect(list.code, list.stderr).toBe(0);
    const out = JSON.parse(list.stdout);
    expect(out.events.map((e: any) => e.seq)).toEqual([...r.json.seq].reverse());
    expect(out.events.every((e: any) => e.source === client.client_id)).toBe(true);
    const text = await gatehouse(['audit', 'list', '--source', client.client_id, '--action', 'agent.error'], s.env);
    expect(text.stdout).toMatch(/agent\.error\s+agent:summarizer .*source=svc_/);
    const verify = await gatehouse(['audit', 'verify', '--json'], s.env);
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  });
});

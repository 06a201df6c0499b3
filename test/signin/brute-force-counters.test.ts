// The brute-force counters of one attempt, taken and given back in one statement each on
// PostgreSQL (src/signin/rate-limit.repository.ts), against the same steps with the limiters one by
// one in memory (PGlite): the counts they leave behind must be the same.
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createBruteForce, IP_FAILURES_PER_MINUTE, type Subject, type Ticket } from '../../src/signin/brute-force.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';

async function counters(t: TestDb): Promise<Record<string, number>> {
  const { rows } = await sql<{ key: string; points: number }>`select key, points from rate_limit order by key`.execute(t.db.kysely);
  return Object.fromEntries(rows.map((r) => [r.key.split(':')[0]!, r.points]));
}

describe('brute-force counters in one statement (PostgreSQL)', () => {
  let t: TestDb | undefined;
  afterEach(async () => t?.drop());

  it('takes each counter once and gives back all of them, or forgives the run at the end', async () => {
    t = await freshDb('postgres');
    const bf = createBruteForce(t.db);
    const who: Subject = { ip: '192.0.2.1', accountKey: 'email:a', device: null };
    const first = await bf.attempt(who);
    expect(first.allowed).toBe(true);
    expect(await counters(t)).toEqual({ signin_ip: 1, signin_account: 1, signin_pending: 1 });
    await bf.failed((first as { ticket: Ticket }).ticket);
    expect(await counters(t)).toEqual({ signin_ip: 1, signin_account: 1, signin_pending: 1, signin_consecutive: 1 });
    const second = await bf.attempt(who);
    expect(await counters(t)).toEqual({ signin_ip: 2, signin_account: 2, signin_pending: 2, signin_consecutive: 1 });
    await bf.passed((second as { ticket: Ticket }).ticket);
    expect(await counters(t)).toEqual({ signin_ip: 1, signin_account: 1, signin_pending: 1, signin_consecutive: 1 });
    const third = await bf.attempt(who);
    await bf.finished((third as { ticket: Ticket }).ticket);
    // The failure stays spent on the address and the account; the run of failures is forgiven.
    expect(await counters(t)).toEqual({ signin_ip: 1, signin_account: 1 });
  });

  it('on a refusal, keeps only the point of the counter that refused', async () => {
    t = await freshDb('postgres');
    const bf = createBruteForce(t.db);
    for (let i = 0; i < IP_FAILURES_PER_MINUTE; i++) {
      const a = await bf.attempt({ ip: '192.0.2.2', accountKey: `email:${i}`, device: null });
      await bf.failed((a as { ticket: Ticket }).ticket);
    }
    const refused = await bf.attempt({ ip: '192.0.2.2', accountKey: 'email:x', device: null });
    expect(refused).toMatchObject({ allowed: false, scope: 'ip', firstRefusal: true });
    const { rows } = await sql<{ key: string; points: number }>`select key, points from rate_limit where key like '%email:x'`.execute(
      t.db.kysely,
    );
    expect(rows.map((r) => [r.key, r.points]).sort()).toEqual([
      ['signin_account:email:x', 0],
      ['signin_pending:email:x', 0],
    ]);
    const again = await bf.attempt({ ip: '192.0.2.2', accountKey: 'email:y', device: null });
    expect(again).toMatchObject({ allowed: false, scope: 'ip', firstRefusal: false });
  });

  it('gives back a counter whose window ended in between by deleting it', async () => {
    t = await freshDb('postgres');
    const bf = createBruteForce(t.db);
    const a = await bf.attempt({ ip: '192.0.2.3', accountKey: 'email:z', device: 'dev1' });
    expect(await counters(t)).toEqual({ signin_ip: 1, signin_device: 1 });
    await sql`update rate_limit set expire = 1`.execute(t.db.kysely);
    await bf.passed((a as { ticket: Ticket }).ticket);
    expect(await counters(t)).toEqual({});
  });
});

describe.each(BACKENDS)('brute-force counters agree on %s', (backend) => {
  let t: TestDb | undefined;
  afterEach(async () => t?.drop());

  it('refuses the sixth failure of an address, and lets a device-cookie attempt through from another', async () => {
    t = await freshDb(backend);
    const bf = createBruteForce(t.db);
    for (let i = 0; i < IP_FAILURES_PER_MINUTE; i++) {
      const a = await bf.attempt({ ip: '198.51.100.1', accountKey: `email:b${i}`, device: null });
      expect(a.allowed).toBe(true);
      await bf.failed((a as { ticket: Ticket }).ticket);
    }
    expect(await bf.attempt({ ip: '198.51.100.1', accountKey: 'email:b', device: null })).toMatchObject({ allowed: false, scope: 'ip' });
    const owner = await bf.attempt({ ip: '198.51.100.2', accountKey: 'email:b', device: 'cookie' });
    expect(owner.allowed).toBe(true);
    await bf.finished((owner as { ticket: Ticket }).ticket);
  });
});

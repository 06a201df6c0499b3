// The background cleanup deletes expired rows of each table through its repository and keeps live ones.
import { afterAll, describe, expect, it } from 'vitest';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';
import { cleanupExpired } from '../../src/jobs/cleanup.ts';

describe.each(BACKENDS)('cleanupExpired on %s', (backend) => {
  let t: TestDb;
  afterAll(() => t?.drop());

  it('deletes expired challenges, enrollments and rate-limit counters, keeps live ones', async () => {
    t = await freshDb(backend);
    const db = t.db.kysely;
    const past = new Date(Date.now() - 60_000);
    const future = new Date(Date.now() + 60_000);
    for (const [id, expires_at] of [
      ['old', past],
      ['live', future],
    ] as const) {
      await db
        .insertInto('webauthn_challenge')
        .values({ id, ceremony: 'authentication', challenge: 'c', account_id: null, expires_at })
        .execute();
      await db
        .insertInto('invitation')
        .values({ id, token_hash: `h-${id}`, email: `${id}@example.com`, role: 'viewer', permissions: '[]', expires_at: future })
        .execute();
      await db
        .insertInto('enrollment')
        .values({
          invitation_id: id,
          account_id: `usr_${id}`,
          email: `${id}@example.com`,
          password_hash: null,
          totp_seed_sealed: null,
          expires_at,
        })
        .execute();
      await db.insertInto('rate_limit').values({ key: id, points: 1, expire: expires_at.getTime() }).execute();
    }
    await db.insertInto('rate_limit').values({ key: 'forever', points: 1, expire: null }).execute();

    const counts = await cleanupExpired(db);
    expect(counts).toMatchObject({ challenges: 1, enrollments: 1, rateLimits: 1 });
    expect((await db.selectFrom('webauthn_challenge').select('id').execute()).map((r) => r.id)).toEqual(['live']);
    expect((await db.selectFrom('enrollment').select('invitation_id').execute()).map((r) => r.invitation_id)).toEqual(['live']);
    expect((await db.selectFrom('rate_limit').select('key').orderBy('key').execute()).map((r) => r.key)).toEqual(['forever', 'live']);
  });
});

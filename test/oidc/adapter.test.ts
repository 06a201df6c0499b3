// The oidc-provider adapter on both dialects: expiry on read, consumption kept for reuse
// detection, whole-grant revocation, and background cleanup.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BACKENDS, freshDb } from '../helpers/db.ts';
import { KyselyAdapter, deleteExpiredPayloads } from '../../src/oidc/adapter.ts';

describe.each(BACKENDS)('Kysely adapter on %s', (backend) => {
  it('stores, finds, consumes, expires and revokes by grant', async () => {
    const t = await freshDb(backend);
    try {
      const codes = new KyselyAdapter('AuthorizationCode', t.db.kysely);
      const refresh = new KyselyAdapter('RefreshToken', t.db.kysely);
      const sessions = new KyselyAdapter('Session', t.db.kysely);
      const grants = new KyselyAdapter('Grant', t.db.kysely);

      await codes.upsert('c1', { grantId: 'g1', accountId: 'usr_1' } as any, 60);
      await refresh.upsert('r1', { grantId: 'g1' } as any, 60);
      await grants.upsert('g1', { accountId: 'usr_1' } as any, 60);
      await refresh.upsert('r2', { grantId: 'g2', jti: 'r2' } as any, 60);
      await sessions.upsert('s1', { uid: 'u1', accountId: 'usr_1' } as any, 60);

      expect(await codes.find('c1')).toEqual({ grantId: 'g1', accountId: 'usr_1', jti: 'c1' });
      expect(await codes.find('r1')).toBeUndefined(); // models do not mix
      expect(await sessions.findByUid('u1')).toMatchObject({ accountId: 'usr_1' });

      // Consumed rows stay findable, marked, so reuse is detected.
      await codes.consume('c1');
      expect((await codes.find('c1'))?.consumed).toEqual(expect.any(Number));

      // Upsert replaces.
      await sessions.upsert('s1', { uid: 'u1', accountId: 'usr_2' } as any, 60);
      expect(await sessions.find('s1')).toMatchObject({ accountId: 'usr_2' });

      // Revoking a grant removes every model of it, and nothing of other grants.
      await refresh.revokeByGrantId('g1');
      expect(await codes.find('c1')).toBeUndefined();
      expect(await refresh.find('r1')).toBeUndefined();
      expect(await grants.find('g1')).toBeUndefined();
      expect(await refresh.find('r2')).toEqual({ grantId: 'g2', jti: 'r2' });
      const stored = await t.db.kysely
        .selectFrom('oidc_payload')
        .select('payload')
        .where('model', '=', 'RefreshToken')
        .executeTakeFirstOrThrow();
      expect(JSON.stringify(stored.payload)).not.toContain('r2');

      // Expired rows are never returned, and cleanup deletes them.
      await refresh.upsert('old', { grantId: 'g3' } as any, 1);
      await t.db.kysely
        .updateTable('oidc_payload')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('grant_id', '=', 'g3')
        .execute();
      expect(await refresh.find('old')).toBeUndefined();
      expect(await deleteExpiredPayloads(t.db.kysely)).toBe(1);
      const left = await t.db.kysely.selectFrom('oidc_payload').select(['model', 'id']).orderBy('model').execute();
      expect(left.map((r) => r.model)).toEqual(['RefreshToken', 'Session']);
      // A bearer value is stored only as its SHA-256; a session keeps its id.
      expect(left.map((r) => r.id)).toEqual(['sha256:' + crypto.createHash('sha256').update('r2').digest('base64url'), 's1']);

      await sessions.destroy('s1');
      expect(await sessions.find('s1')).toBeUndefined();
      expect(await sessions.find('x'.repeat(10_000))).toBeUndefined();
    } finally {
      await t.drop();
    }
  });
});

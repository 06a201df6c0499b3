import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { BACKENDS, freshDb } from './db.ts';

describe.each(BACKENDS)('test databases on %s', (backend) => {
  it('start migrated and empty, and writes are kept', async () => {
    const t = await freshDb(backend);
    try {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from client`.execute(t.db.kysely);
      expect(rows[0]!.n).toBe(0);
      await t.db.kysely.insertInto('change_version').values({ topic: 'smoke' }).execute();
      const v = await t.db.kysely.selectFrom('change_version').select('version').where('topic', '=', 'smoke').executeTakeFirstOrThrow();
      expect(String(v.version)).toBe('0');
    } finally {
      await t.drop();
    }
  });
});

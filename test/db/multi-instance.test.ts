// Several instances on one PostgreSQL: they start at once (migrations and first keys race),
// share keys, and see each other's client changes.
import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createPgDatabase } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { migrations as allMigrations } from '../../migrations/index.ts';
import { createClient, deleteClient } from '../../src/clients/clients.service.ts';

describe('several instances on one PostgreSQL database', () => {
  const servers: TestServer[] = [];
  let drop: () => Promise<void> = async () => {};
  afterAll(async () => {
    for (const s of servers) await s.gatehouse.close();
    await drop();
  });

  it('start at once, migrate once, create one key set, and agree on clients', async () => {
    const pgdb = await createPgDatabase();
    drop = pgdb.drop;
    const masterKey = crypto.randomBytes(32).toString('base64');
    const started = await Promise.all(
      [0, 1, 2].map(async () => {
        const db = await openDatabase({ databaseUrl: pgdb.url, dataDir: '' });
        return startServer(
          'postgres',
          { GATEHOUSE_MASTER_KEY: masterKey, DATABASE_URL: pgdb.url },
          { testDb: { db, url: null, drop: async () => {} } },
        );
      }),
    );
    servers.push(...started);
    const [a, b, c] = started as [TestServer, TestServer, TestServer];

    const { rows: migrations } = await sql<{ n: number }>`select count(*)::int as n from kysely_migration`.execute(a.gatehouse.db.kysely);
    expect(migrations[0]!.n).toBe(Object.keys(allMigrations).length);
    const keys = await a.gatehouse.db.kysely.selectFrom('signing_key').select(['alg', 'state']).execute();
    expect(keys.map((k) => `${k.alg}:${k.state}`).sort()).toEqual(['ES256:current', 'ES256:next', 'RS256:current', 'RS256:next']);
    const jwks = await Promise.all(started.map(async (s) => JSON.stringify(await (await fetch(`${s.url}/jwks`)).json())));
    expect(new Set(jwks).size).toBe(1);

    // A client created through one instance is served by the others (negative cache dropped).
    const probe = (s: TestServer, id: string, secret: string) =>
      fetch(`${s.url}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
        },
        body: 'grant_type=client_credentials',
      });
    expect((await probe(b, 'svc_notyet', 'x')).status).toBe(401);
    const client = await createClient(a.gatehouse.db.kysely, { name: 'shared', grants: ['client_credentials'], roles: ['viewer'] });
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await probe(b, client.client_id, client.client_secret!)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(200);
    expect((await probe(c, client.client_id, client.client_secret!)).status).toBe(200);

    await deleteClient(a.gatehouse.db.kysely, client.client_id);
    for (let i = 0; i < 100 && status !== 401; i++) {
      status = (await probe(c, client.client_id, client.client_secret!)).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
  });
});

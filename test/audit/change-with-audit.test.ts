// A client or key change and its audit event are one transaction: when the event cannot be
// appended, the change does not happen either (the admin console and the CLI both rely on it).
import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendAudit } from '../../src/audit/audit.service.ts';
import type { AuditEventInput } from '../../src/audit/event.ts';
import { createClient, deleteClient, listClients, rotateClientSecret } from '../../src/clients/clients.service.ts';
import type { Database } from '../../src/db/schema.ts';
import { inTransaction } from '../../src/db/transaction.ts';
import { listKeys, rotateKeys } from '../../src/keys/keys.service.ts';
import { freshDb, type TestDb } from '../helpers/db.ts';
import { POLICY, withKeys } from './helpers.ts';

// An event the audit log refuses (a Date in its details is not a JSON value): the append throws
// inside the transaction, after the change.
const refused: AuditEventInput = { action: 'client.create', outcome: 'success', actor: 'cli', details: { at: new Date(0) } };

describe('a change whose audit append fails leaves no change', () => {
  let t: TestDb;
  let db: Kysely<Database>;

  beforeEach(async () => {
    t = await freshDb('pglite');
    db = t.db.kysely;
  });
  afterEach(() => t.drop());

  const changeThenFail = (work: (trx: Kysely<Database>) => Promise<unknown>) =>
    inTransaction(db, async (trx) => {
      await work(trx);
      await appendAudit(trx, refused);
    });

  it('client create, secret rotation and delete', async () => {
    const input = { name: 'svc', grants: ['client_credentials'] as const, roles: ['viewer'] };
    await expect(changeThenFail((trx) => createClient(trx, { ...input, grants: [...input.grants] }))).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    expect(await listClients(db)).toEqual([]);

    const { client_id } = await createClient(db, { ...input, grants: [...input.grants] });
    const before = await db.selectFrom('client').select('secret_hash').where('client_id', '=', client_id).executeTakeFirstOrThrow();
    await expect(changeThenFail((trx) => rotateClientSecret(trx, client_id))).rejects.toMatchObject({ code: 'VALIDATION' });
    const after = await db.selectFrom('client').select('secret_hash').where('client_id', '=', client_id).executeTakeFirstOrThrow();
    expect(after.secret_hash).toBe(before.secret_hash);

    await expect(changeThenFail((trx) => deleteClient(trx, client_id))).rejects.toMatchObject({ code: 'VALIDATION' });
    expect((await listClients(db)).map((c) => c.client_id)).toEqual([client_id]);
  });

  it('key rotation', async () => {
    const { sealer } = await withKeys(db);
    const before = await listKeys(db);
    await expect(changeThenFail((trx) => rotateKeys(trx, sealer, POLICY))).rejects.toMatchObject({ code: 'VALIDATION' });
    expect(await listKeys(db)).toEqual(before);
  });

  it('commits both when the event is accepted', async () => {
    const created = await inTransaction(db, async (trx) => {
      const c = await createClient(trx, { name: 'ok', grants: ['client_credentials'] });
      await appendAudit(trx, { action: 'client.create', outcome: 'success', actor: 'cli', target: c.client_id });
      return c;
    });
    expect((await listClients(db)).map((c) => c.client_id)).toEqual([created.client_id]);
    expect(await db.selectFrom('audit_event').select('target').execute()).toEqual([{ target: created.client_id }]);
  });
});

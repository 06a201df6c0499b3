// The console's own client row and its sessions, on both databases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount, disableAccount, endAllSessions, enableAccount } from '../../src/accounts/accounts.service.ts';
import { ADMIN_CLIENT_ID, ensureAdminClient } from '../../src/admin/admin-client.ts';
import {
  ADMIN_SESSION_IDLE_SECONDS,
  ADMIN_SESSION_MAX_SECONDS,
  createAdminSession,
  endAdminSession,
  findAdminSession,
  isFresh,
} from '../../src/admin/sessions.ts';
import { ClientCache } from '../../src/clients/client-cache.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';

describe.each(BACKENDS)('admin client and sessions on %s', (backend) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb(backend);
  });
  afterAll(async () => t?.drop());

  it('registers the built-in client once, follows the issuer, and repairs an edited row', async () => {
    const db = t.db.kysely;
    const version = async () =>
      String((await db.selectFrom('change_version').select('version').where('topic', '=', 'clients').executeTakeFirstOrThrow()).version);
    expect(await ensureAdminClient(db, 'http://localhost:3000')).toBe(true);
    const v1 = await version();
    expect(await ensureAdminClient(db, 'http://localhost:3000')).toBe(false);
    expect(await version()).toBe(v1); // no cache flush on every start
    const cache = new ClientCache(db);
    expect((await cache.get(ADMIN_CLIENT_ID))!.metadata).toMatchObject({
      redirect_uris: ['http://localhost:3000/admin/callback'],
      token_endpoint_auth_method: 'none',
      require_auth_time: true,
    });
    expect(await ensureAdminClient(db, 'https://id.example.com')).toBe(true);
    cache.invalidate();
    expect((await cache.get(ADMIN_CLIENT_ID))!.metadata).toMatchObject({ redirect_uris: ['https://id.example.com/admin/callback'] });
    await db.updateTable('client').set({ secret_hash: 'planted' }).where('client_id', '=', ADMIN_CLIENT_ID).execute();
    expect(await ensureAdminClient(db, 'https://id.example.com')).toBe(true);
    expect(
      (await db.selectFrom('client').select('secret_hash').where('client_id', '=', ADMIN_CLIENT_ID).executeTakeFirstOrThrow()).secret_hash,
    ).toBeNull();
  });

  it('keeps a session while the account is active and not signed out everywhere', async () => {
    const db = t.db.kysely;
    const a = await createAccount(db, { email: `s-${backend}@example.com`, role: 'owner', passwordHash: null });
    const now = new Date();
    const { token, session } = await createAdminSession(db, {
      accountId: a.id,
      authTime: now,
      amr: ['pwd', 'otp'],
      acr: 'urn:gatehouse:acr:mfa',
      now,
    });
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(session.id).not.toBe(token);
    expect((await findAdminSession(db, token))?.account.id).toBe(a.id);
    expect(await findAdminSession(db, 'x'.repeat(43))).toBeNull();
    expect(await findAdminSession(db, session.id)).toBeNull(); // the stored hash is not a cookie

    // Idle too long, or past the absolute lifetime.
    expect(await findAdminSession(db, token, new Date(now.getTime() + (ADMIN_SESSION_IDLE_SECONDS + 5) * 1000))).toBeNull();
    const second = await createAdminSession(db, { accountId: a.id, authTime: now, amr: [], acr: null, now });
    expect(await findAdminSession(db, second.token, new Date(now.getTime() + (ADMIN_SESSION_MAX_SECONDS + 5) * 1000))).toBeNull();

    const third = await createAdminSession(db, { accountId: a.id, authTime: now, amr: [], acr: null });
    await new Promise((r) => setTimeout(r, 5));
    await endAllSessions(db, a.id);
    expect(await findAdminSession(db, third.token)).toBeNull();

    await new Promise((r) => setTimeout(r, 5));
    const fourth = await createAdminSession(db, { accountId: a.id, authTime: new Date(), amr: [], acr: null });
    expect(await findAdminSession(db, fourth.token)).not.toBeNull();
    const other = await createAccount(db, { email: `o-${backend}@example.com`, role: 'owner', passwordHash: null });
    await disableAccount(db, a.id);
    expect(await findAdminSession(db, fourth.token)).toBeNull();
    await enableAccount(db, a.id);
    expect(await findAdminSession(db, fourth.token)).toBeNull(); // deleted, not suspended
    expect(other.id).toMatch(/^usr_/);

    const fifth = await createAdminSession(db, { accountId: a.id, authTime: new Date(), amr: [], acr: null });
    await endAdminSession(db, fifth.token);
    expect(await findAdminSession(db, fifth.token)).toBeNull();
  });

  it('calls a sign-in fresh for five minutes', () => {
    const now = new Date();
    const s = (ago: number) => ({
      id: 'x',
      accountId: 'usr_x',
      authTime: new Date(now.getTime() - ago * 1000),
      amr: [],
      acr: null,
      createdAt: now,
      expiresAt: now,
    });
    expect(isFresh(s(299), now)).toBe(true);
    expect(isFresh(s(301), now)).toBe(false);
  });
});

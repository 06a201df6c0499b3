// Attacks on invitation links: reuse, expiry, a database read, a stale link, partial enrollment.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAccount, countOwners, setRole } from '../../src/accounts/accounts.service.ts';
import {
  INVITATION_INVALID_MESSAGE,
  consumeInvitation,
  createInvitation,
  enrollAccount,
  findValidInvitation,
  firstOwnerInvitation,
} from '../../src/accounts/invitations.ts';
import { hashPassword } from '../../src/accounts/password.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';

describe.each(BACKENDS)('invitations on %s', (backend) => {
  let t: TestDb;

  beforeEach(async () => {
    t = await freshDb(backend);
  });
  afterEach(() => t.drop());

  const accountCount = async () => (await sql<{ n: number }>`select count(*)::int as n from account`.execute(t.db.kysely)).rows[0]!.n;

  it('gives a 256-bit token, stores only its SHA-256, and expires after 72 hours by default', async () => {
    const before = Date.now();
    const inv = await createInvitation(t.db.kysely, {
      email: ' Ivy@Example.com ',
      role: 'operator',
      permissions: ['agent:summarizer:inject'],
    });
    expect(inv.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(inv.token, 'base64url')).toHaveLength(32);
    expect(inv.email).toBe('ivy@example.com');
    expect(inv.expires_at.getTime() - before).toBeGreaterThanOrEqual(72 * 3600 * 1000 - 5000);
    expect(inv.expires_at.getTime() - before).toBeLessThanOrEqual(72 * 3600 * 1000 + 5000);
    const rows = await t.db.kysely.selectFrom('invitation').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(inv.token);
    expect(rows[0]!.token_hash).toBe(crypto.createHash('sha256').update(inv.token).digest('base64url'));
    expect(rows[0]!.permissions).toEqual(['agent:summarizer:inject']);
  });

  it('can be used once', async () => {
    const inv = await createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' });
    expect((await findValidInvitation(t.db.kysely, inv.token))?.email).toBe('ivy@example.com');
    const used = await consumeInvitation(t.db.kysely, inv.token);
    expect(used.used_at).toBeInstanceOf(Date);
    expect(await findValidInvitation(t.db.kysely, inv.token)).toBeNull();
    await expect(consumeInvitation(t.db.kysely, inv.token)).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: INVITATION_INVALID_MESSAGE,
    });
  });

  it('is used up by exactly one of many concurrent enrollments', async () => {
    const inv = await createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' });
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => enrollAccount(t.db.kysely, inv.token, { passwordHash: null })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await accountCount()).toBe(1);
  });

  it('refuses an expired invitation with the clear message', async () => {
    const inv = await createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' });
    await t.db.kysely
      .updateTable('invitation')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .execute();
    expect(await findValidInvitation(t.db.kysely, inv.token)).toBeNull();
    const err = await enrollAccount(t.db.kysely, inv.token, { passwordHash: null }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'NOT_FOUND',
      message: 'This invitation link has expired or was already used. Ask an owner for a new one.',
    });
    expect(await accountCount()).toBe(0);
  });

  it('refuses tokens that are not ours, without a database detail', async () => {
    await createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' });
    for (const token of [crypto.randomBytes(32).toString('base64url'), "' or 1=1 --", 'x'.repeat(10_000), '', undefined, 42]) {
      expect(await findValidInvitation(t.db.kysely, token)).toBeNull();
      await expect(consumeInvitation(t.db.kysely, token)).rejects.toMatchObject({ message: INVITATION_INVALID_MESSAGE });
    }
  });

  it('makes an older unused invitation for the same email stop working', async () => {
    const first = await createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' });
    const other = await createInvitation(t.db.kysely, { email: 'jo@example.com', role: 'viewer' });
    const second = await createInvitation(t.db.kysely, { email: 'IVY@example.com', role: 'admin' });
    expect(await findValidInvitation(t.db.kysely, first.token)).toBeNull();
    expect(await findValidInvitation(t.db.kysely, other.token)).not.toBeNull();
    await expect(enrollAccount(t.db.kysely, first.token, { passwordHash: null })).rejects.toMatchObject({
      message: INVITATION_INVALID_MESSAGE,
    });
    const account = await enrollAccount(t.db.kysely, second.token, { passwordHash: null });
    expect(account.role).toBe('admin');
  });

  it('leaves exactly one usable link when the same email is invited concurrently', async () => {
    const invs = await Promise.all(
      Array.from({ length: 5 }, () => createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' })),
    );
    const valid = await Promise.all(invs.map((i) => findValidInvitation(t.db.kysely, i.token)));
    expect(valid.filter((v) => v !== null)).toHaveLength(1);
  });

  it('refuses to invite an email that already has an account', async () => {
    await createAccount(t.db.kysely, { email: 'ivy@example.com', role: 'viewer', passwordHash: null });
    await expect(createInvitation(t.db.kysely, { email: 'Ivy@Example.com', role: 'viewer' })).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('validates role, permissions and lifetime', async () => {
    await expect(createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'root' })).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(
      createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer', permissions: ['everything'] }),
    ).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer', ttlSeconds: 0 })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    await expect(createInvitation(t.db.kysely, { email: 'not an email', role: 'viewer' })).rejects.toMatchObject({ code: 'VALIDATION' });
  });

  it('enrolls the person with the invited role, permissions and password', async () => {
    const inv = await createInvitation(t.db.kysely, {
      email: 'ivy@example.com',
      role: 'operator',
      permissions: ['thread:*:view'],
      createdBy: 'usr_owner',
    });
    const account = await enrollAccount(t.db.kysely, inv.token, { passwordHash: await hashPassword('lantern orbit pebble quasar') });
    expect(account).toMatchObject({
      email: 'ivy@example.com',
      role: 'operator',
      permissions: ['thread:*:view'],
      status: 'active',
      has_password: true,
    });
    expect(account.password_changed_at).toBeInstanceOf(Date);
    const row = await t.db.kysely.selectFrom('invitation').selectAll().executeTakeFirstOrThrow();
    expect(row.account_id).toBe(account.id);
    expect(row.used_at).not.toBeNull();
  });

  it('creates nothing from a consumed invitation', async () => {
    const inv = await createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' });
    await consumeInvitation(t.db.kysely, inv.token);
    await expect(enrollAccount(t.db.kysely, inv.token, { passwordHash: null })).rejects.toMatchObject({
      message: INVITATION_INVALID_MESSAGE,
    });
    expect(await accountCount()).toBe(0);
  });

  it('gives the invitation back when the account cannot be created (no partial write)', async () => {
    const inv = await createInvitation(t.db.kysely, { email: 'ivy@example.com', role: 'viewer' });
    // The email got an account some other way after the invitation was sent.
    await createAccount(t.db.kysely, { email: 'ivy@example.com', role: 'viewer', passwordHash: null });
    await expect(enrollAccount(t.db.kysely, inv.token, { passwordHash: null })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await accountCount()).toBe(1);
    const row = await t.db.kysely.selectFrom('invitation').selectAll().executeTakeFirstOrThrow();
    expect(row.used_at).toBeNull();
    expect(row.account_id).toBeNull();
  });

  it('issues a first-owner link only while there is no owner; the person gives their email', async () => {
    const first = await firstOwnerInvitation(t.db.kysely);
    expect(first).not.toBeNull();
    expect(first!.role).toBe('owner');
    expect(first!.email).toBe('');
    // A restart issues a new link and the older one stops working (only its hash was kept).
    const second = await firstOwnerInvitation(t.db.kysely);
    expect(await findValidInvitation(t.db.kysely, first!.token)).toBeNull();
    await expect(enrollAccount(t.db.kysely, second!.token, { passwordHash: null })).rejects.toMatchObject({ code: 'VALIDATION' });
    const owner = await enrollAccount(t.db.kysely, second!.token, { passwordHash: null, email: 'Olga@Example.com' });
    expect(owner).toMatchObject({ email: 'olga@example.com', role: 'owner' });
    expect(await countOwners(t.db.kysely)).toBe(1);
    expect(await firstOwnerInvitation(t.db.kysely)).toBeNull();
  });

  it('voids an unused first-owner link once an owner exists', async () => {
    const link = await firstOwnerInvitation(t.db.kysely);
    const someone = await createAccount(t.db.kysely, { email: 'olga@example.com', role: 'viewer', passwordHash: null });
    await setRole(t.db.kysely, someone.id, 'owner');
    await expect(enrollAccount(t.db.kysely, link!.token, { passwordHash: null, email: 'mallory@example.com' })).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    expect(await accountCount()).toBe(1);
  });

  it('resets: a reset invitation needs an existing account and cannot create one', async () => {
    await expect(createInvitation(t.db.kysely, { email: 'ivy@example.com', purpose: 'reset' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    const account = await createAccount(t.db.kysely, { email: 'ivy@example.com', role: 'admin', passwordHash: null });
    const inv = await createInvitation(t.db.kysely, { email: 'ivy@example.com', purpose: 'reset' });
    expect(inv.role).toBe('admin');
    await expect(enrollAccount(t.db.kysely, inv.token, { passwordHash: null })).rejects.toMatchObject({ code: 'VALIDATION' });
    const used = await consumeInvitation(t.db.kysely, inv.token);
    expect(used).toMatchObject({ purpose: 'reset', account_id: account.id });
  });
});

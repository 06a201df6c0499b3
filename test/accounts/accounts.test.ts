import crypto from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  authenticatePassword,
  countOwners,
  createAccount,
  disableAccount,
  enableAccount,
  endAllSessions,
  findAccount,
  findAccountByEmail,
  listAccounts,
  recordSignIn,
  setPassword,
  setPermissions,
  setRole,
} from '../../src/accounts/accounts.service.ts';
import { hashPassword } from '../../src/accounts/password.ts';
import { createSealer } from '../../src/crypto/seal.ts';
import { deriveBackupCodeKey, regenerateBackupCodes, useBackupCode } from '../../src/mfa/backup-codes.ts';
import { factorSummary, resetFactors } from '../../src/mfa/factors.ts';
import { confirmTotp, newTotpEnrollment, totpAt } from '../../src/mfa/totp.ts';
import { ScureBase32Plugin } from 'otplib';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';

const PASSWORD = 'lantern orbit pebble quasar';

describe.each(BACKENDS)('accounts on %s', (backend) => {
  let t: TestDb;

  beforeEach(async () => {
    t = await freshDb(backend);
  });
  afterEach(() => t.drop());

  const version = async () =>
    String(
      (await t.db.kysely.selectFrom('change_version').select('version').where('topic', '=', 'accounts').executeTakeFirstOrThrow()).version,
    );
  const person = (email: string, role = 'viewer', passwordHash: string | null = null) =>
    createAccount(t.db.kysely, { email, role, passwordHash });

  async function oidcRows(accountId: string, tag: string) {
    const grantId = `grant-${tag}`;
    const rows = [
      { model: 'Session', id: `sess-${tag}`, payload: { accountId }, grant_id: null },
      { model: 'Grant', id: grantId, payload: { accountId, clientId: 'app_x' }, grant_id: grantId },
      { model: 'RefreshToken', id: `rt-${tag}`, payload: { accountId, grantId }, grant_id: grantId },
      { model: 'AuthorizationCode', id: `code-${tag}`, payload: { accountId, grantId }, grant_id: grantId },
      // A row of the grant that does not name the person still goes with the grant.
      { model: 'AccessToken', id: `at-${tag}`, payload: { grantId }, grant_id: grantId },
    ];
    for (const r of rows) {
      await t.db.kysely
        .insertInto('oidc_payload')
        .values({ ...r, payload: JSON.stringify(r.payload), uid: null, user_code: null, expires_at: null, consumed_at: null })
        .execute();
    }
  }
  const oidcIds = async () => (await t.db.kysely.selectFrom('oidc_payload').select('id').orderBy('id').execute()).map((r) => r.id);

  it('creates a person with a usr_ id and a normalized email, once per email', async () => {
    const v0 = await version();
    const a = await person(' Ana@Example.com ', 'operator');
    expect(a.id).toMatch(/^usr_[A-Za-z0-9_-]{20}$/);
    expect(a).toMatchObject({ email: 'ana@example.com', role: 'operator', permissions: [], status: 'active', has_password: false });
    expect(await version()).not.toBe(v0);
    await expect(person('ANA@example.com')).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await findAccountByEmail(t.db.kysely, 'ana@EXAMPLE.com'))?.id).toBe(a.id);
    expect((await findAccount(t.db.kysely, a.id))?.email).toBe('ana@example.com');
    expect(await findAccount(t.db.kysely, 'usr_nobody')).toBeNull();
  });

  it('validates the role and the permissions', async () => {
    await expect(person('ana@example.com', 'superuser')).rejects.toMatchObject({ code: 'VALIDATION' });
    const a = await person('ana@example.com');
    await expect(setRole(t.db.kysely, a.id, 'root')).rejects.toMatchObject({ code: 'VALIDATION', details: { field: 'role' } });
    await expect(setPermissions(t.db.kysely, a.id, ['agent:x:inject', 'drop table account'])).rejects.toMatchObject({
      code: 'VALIDATION',
      details: { field: 'permissions.1' },
    });
    await expect(setRole(t.db.kysely, 'usr_nobody', 'viewer')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('sets role and permissions, bumping the accounts version each time', async () => {
    const a = await person('ana@example.com');
    const v0 = await version();
    expect((await setRole(t.db.kysely, a.id, 'admin')).role).toBe('admin');
    const v1 = await version();
    expect(v1).not.toBe(v0);
    const b = await setPermissions(t.db.kysely, a.id, ['agent:summarizer:inject', 'thread:*:view', 'agent:summarizer:inject']);
    expect(b.permissions).toEqual(['agent:summarizer:inject', 'thread:*:view']);
    expect(await version()).not.toBe(v1);
  });

  it('refuses to demote or disable the last active owner', async () => {
    const o = await person('olga@example.com', 'owner');
    await expect(setRole(t.db.kysely, o.id, 'admin')).rejects.toMatchObject({ code: 'LAST_OWNER' });
    await expect(disableAccount(t.db.kysely, o.id)).rejects.toMatchObject({ code: 'LAST_OWNER' });
    expect(await findAccount(t.db.kysely, o.id)).toMatchObject({ role: 'owner', status: 'active' });
    // Re-affirming the role is not a demotion.
    expect((await setRole(t.db.kysely, o.id, 'owner')).role).toBe('owner');
  });

  it('lets an owner step down once another active owner exists, and a disabled owner does not count', async () => {
    const o = await person('olga@example.com', 'owner');
    const p = await person('pia@example.com', 'owner');
    await disableAccount(t.db.kysely, p.id);
    expect(await countOwners(t.db.kysely)).toBe(1);
    await expect(setRole(t.db.kysely, o.id, 'viewer')).rejects.toMatchObject({ code: 'LAST_OWNER' });
    await enableAccount(t.db.kysely, p.id);
    expect(await countOwners(t.db.kysely)).toBe(2);
    expect((await setRole(t.db.kysely, o.id, 'viewer')).role).toBe('viewer');
    await expect(setRole(t.db.kysely, p.id, 'viewer')).rejects.toMatchObject({ code: 'LAST_OWNER' });
  });

  it('does not let two owners demote each other at the same time', async () => {
    const o = await person('olga@example.com', 'owner');
    const p = await person('pia@example.com', 'owner');
    // Hold the first demotion's transaction open while the second one runs, so the two
    // overlap for certain (on PGlite, one connection, the second simply waits its turn).
    let firstDone!: () => void;
    let release!: () => void;
    const firstDemoted = new Promise<void>((r) => (firstDone = r));
    const gate = new Promise<void>((r) => (release = r));
    const first = t.db.kysely.transaction().execute(async (trx) => {
      await setRole(trx, o.id, 'admin');
      firstDone();
      await gate;
    });
    await firstDemoted;
    const second = setRole(t.db.kysely, p.id, 'admin');
    await new Promise((r) => setTimeout(r, 300));
    release();
    const results = await Promise.allSettled([first, second]);
    expect(results[0]!.status).toBe('fulfilled');
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: 'LAST_OWNER' } });
    expect(await countOwners(t.db.kysely)).toBe(1);
  });

  it("disabling ends the person's sessions and grants, and nobody else's", async () => {
    const a = await person('ana@example.com');
    const b = await person('ben@example.com');
    await oidcRows(a.id, 'a');
    await oidcRows(b.id, 'b');
    const v0 = await version();
    const disabled = await disableAccount(t.db.kysely, a.id);
    expect(disabled.status).toBe('disabled');
    expect(disabled.sessions_valid_after).toBeInstanceOf(Date);
    expect(await oidcIds()).toEqual(['at-b', 'code-b', 'grant-b', 'rt-b', 'sess-b']);
    expect(await version()).not.toBe(v0);
    expect((await enableAccount(t.db.kysely, a.id)).status).toBe('active');
  });

  it('ends all sessions: moves sessions_valid_after and deletes sessions, grants and tokens', async () => {
    const a = await person('ana@example.com');
    const b = await person('ben@example.com');
    await oidcRows(a.id, 'a');
    await oidcRows(b.id, 'b');
    const before = Date.now();
    const v0 = await version();
    expect(await endAllSessions(t.db.kysely, a.id)).toEqual({ deleted: 5 });
    expect(await oidcIds()).toEqual(['at-b', 'code-b', 'grant-b', 'rt-b', 'sess-b']);
    const after = await findAccount(t.db.kysely, a.id);
    expect(after!.sessions_valid_after!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(after!.status).toBe('active');
    expect(await version()).not.toBe(v0);
  });

  it('sets a password: checks strength, ends other sessions, keeps the current one', async () => {
    const a = await person('ana@example.com', 'viewer', await hashPassword(PASSWORD));
    await oidcRows(a.id, 'a');
    await t.db.kysely
      .insertInto('oidc_payload')
      .values({
        model: 'Session',
        id: 'sess-current',
        payload: JSON.stringify({ accountId: a.id }),
        grant_id: null,
        uid: null,
        user_code: null,
        expires_at: null,
        consumed_at: null,
      })
      .execute();
    await expect(setPassword(t.db.kysely, a.id, 'password1234')).rejects.toMatchObject({ code: 'VALIDATION' });
    await expect(setPassword(t.db.kysely, a.id, 'ana@example.com!')).rejects.toMatchObject({ code: 'VALIDATION' });
    const v0 = await version();
    const updated = await setPassword(t.db.kysely, a.id, 'meadow ferry crimson atlas', { exceptSessionId: 'sess-current' });
    expect(updated.password_changed_at).toBeInstanceOf(Date);
    expect(updated.sessions_valid_after?.getTime()).toBe(updated.password_changed_at?.getTime());
    expect(await oidcIds()).toEqual(['sess-current']);
    expect(await version()).not.toBe(v0);
    expect((await authenticatePassword(t.db.kysely, 'ana@example.com', PASSWORD)).ok).toBe(false);
    expect((await authenticatePassword(t.db.kysely, 'ana@example.com', 'meadow ferry crimson atlas')).ok).toBe(true);
  });

  it('signs in by password with one answer for every wrong case', async () => {
    const a = await person('ana@example.com', 'viewer', await hashPassword(PASSWORD));
    const pk = await person('pk@example.com'); // passkey only: no password hash
    const ok = await authenticatePassword(t.db.kysely, ' ANA@example.com', PASSWORD);
    expect(ok).toMatchObject({ ok: true, account: { id: a.id } });
    // The existing account an email names comes back for the audit's target, never for the page.
    for (const [email, pw, accountId] of [
      ['ana@example.com', 'lantern orbit pebble quasaR', a.id],
      ['nobody@example.com', PASSWORD, null],
      ['not an email', PASSWORD, null],
      ['pk@example.com', PASSWORD, pk.id],
      ['ana@example.com', '', a.id],
    ] as const) {
      expect(await authenticatePassword(t.db.kysely, email, pw)).toEqual({ ok: false, reason: 'invalid', accountId });
    }
    await person('olga@example.com', 'owner');
    await disableAccount(t.db.kysely, a.id);
    expect(await authenticatePassword(t.db.kysely, 'ana@example.com', PASSWORD)).toEqual({
      ok: false,
      reason: 'disabled',
      accountId: a.id,
    });
    expect(await authenticatePassword(t.db.kysely, 'ana@example.com', 'wrong wrong wrong')).toEqual({
      ok: false,
      reason: 'invalid',
      accountId: a.id,
    });
  });

  it('lists people with their factors and last sign-in', async () => {
    const sealer = createSealer(crypto.randomBytes(32));
    const key = deriveBackupCodeKey(crypto.randomBytes(32));
    const a = await person('ana@example.com', 'operator');
    const b = await person('ben@example.com');
    const e = await newTotpEnrollment(t.db.kysely, sealer, a.id, a.email);
    const now = Math.floor(Date.now() / 1000);
    await confirmTotp(t.db.kysely, sealer, a.id, e.id, await totpAt(new ScureBase32Plugin().decode(e.secretBase32), now));
    const codes = await regenerateBackupCodes(t.db.kysely, key, a.id);
    await useBackupCode(t.db.kysely, key, a.id, codes[0]);
    await t.db.kysely
      .insertInto('webauthn_credential')
      .values({
        id: 'cred1',
        account_id: a.id,
        public_key: 'pk',
        transports: '[]',
        device_type: 'multiDevice',
        backed_up: true,
        name: 'Laptop',
      })
      .execute();
    // An unconfirmed TOTP enrollment is not a factor.
    await newTotpEnrollment(t.db.kysely, sealer, b.id, b.email);
    const signedIn = new Date('2026-11-20T08:00:00Z');
    await recordSignIn(t.db.kysely, a.id, signedIn);
    const list = await listAccounts(t.db.kysely);
    expect(list.map((x) => x.email)).toEqual(['ana@example.com', 'ben@example.com']);
    expect(list[0]!.factors).toEqual({ totp: true, passkeys: 1, backup_codes_left: 9 });
    expect(list[0]!.last_sign_in_at?.toISOString()).toBe(signedIn.toISOString());
    expect(list[1]!.factors).toEqual({ totp: false, passkeys: 0, backup_codes_left: 0 });
    expect(list[1]!.last_sign_in_at).toBeNull();
    expect(JSON.stringify(list)).not.toContain('password_hash');
    expect(await factorSummary(t.db.kysely, a.id)).toEqual({ totp: true, passkeys: 1, backup_codes_left: 9 });
  });

  it('resets factors: TOTP, passkeys and backup codes gone, sessions ended, in one go', async () => {
    const sealer = createSealer(crypto.randomBytes(32));
    const a = await person('ana@example.com');
    const e = await newTotpEnrollment(t.db.kysely, sealer, a.id, a.email);
    await confirmTotp(
      t.db.kysely,
      sealer,
      a.id,
      e.id,
      await totpAt(new ScureBase32Plugin().decode(e.secretBase32), Math.floor(Date.now() / 1000)),
    );
    await regenerateBackupCodes(t.db.kysely, deriveBackupCodeKey(crypto.randomBytes(32)), a.id);
    await t.db.kysely
      .insertInto('webauthn_credential')
      .values({
        id: 'cred1',
        account_id: a.id,
        public_key: 'pk',
        transports: '[]',
        device_type: 'singleDevice',
        backed_up: false,
        name: 'Key',
      })
      .execute();
    await oidcRows(a.id, 'a');
    expect(await resetFactors(t.db.kysely, a.id)).toEqual({ totp: 1, passkeys: 1, backup_codes: 10 });
    expect(await factorSummary(t.db.kysely, a.id)).toEqual({ totp: false, passkeys: 0, backup_codes_left: 0 });
    expect(await oidcIds()).toEqual([]);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from account`.execute(t.db.kysely);
    expect(rows[0]!.n).toBe(1);
  });
});

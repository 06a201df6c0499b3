// Attacks on the TOTP factor: replay, stale codes, races, and a database read.
import crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScureBase32Plugin } from 'otplib';
import { createAccount } from '../../src/accounts/accounts.service.ts';
import { createSealer } from '../../src/crypto/seal.ts';
import { confirmTotp, newTotpEnrollment, totpAt, verifyTotp } from '../../src/mfa/totp.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';

const base32 = new ScureBase32Plugin();
// 10 seconds into a step, so that "the previous step" and "the next step" are unambiguous.
const STEP = 60_000_000;
const T = STEP * 30 + 10;
const at = (seconds: number) => ({ now: new Date(seconds * 1000) });
const codeAt = (secret: string, seconds: number) => totpAt(base32.decode(secret), seconds);

describe.each(BACKENDS)('TOTP on %s', (backend) => {
  let t: TestDb;
  const sealer = createSealer(crypto.randomBytes(32));

  beforeEach(async () => {
    t = await freshDb(backend);
  });
  afterEach(() => t.drop());

  async function enrolled(email = 'tess@example.com') {
    const account = await createAccount(t.db.kysely, { email, role: 'operator', passwordHash: null });
    const e = await newTotpEnrollment(t.db.kysely, sealer, account.id, email);
    // Confirm with a code from long before T, so the sign-in tests start from a clean step.
    expect(await confirmTotp(t.db.kysely, sealer, account.id, e.id, await codeAt(e.secretBase32, T - 3600), at(T - 3600))).toBe(true);
    return { accountId: account.id, secret: e.secretBase32, id: e.id };
  }

  it('returns a key, an otpauth URL and a QR code for the app', async () => {
    const account = await createAccount(t.db.kysely, { email: 'tess@example.com', role: 'viewer', passwordHash: null });
    const e = await newTotpEnrollment(t.db.kysely, sealer, account.id, 'tess@example.com');
    expect(base32.decode(e.secretBase32)).toHaveLength(20);
    const url = new URL(e.otpauthUrl);
    expect(url.protocol).toBe('otpauth:');
    expect(decodeURIComponent(url.pathname)).toContain('Gatehouse:tess@example.com');
    expect(url.searchParams.get('secret')).toBe(e.secretBase32);
    expect(url.searchParams.get('issuer')).toBe('Gatehouse');
    expect(e.qrSvg.trimStart()).toMatch(/^<svg/);
  });

  it('accepts a code once and refuses the same code as replayed', async () => {
    const { accountId, secret } = await enrolled();
    const code = await codeAt(secret, T);
    expect(await verifyTotp(t.db.kysely, sealer, accountId, code, at(T))).toEqual({ ok: true });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, code, at(T))).toEqual({ ok: false, reason: 'replayed' });
    // Still refused later in the window, while the code is still "valid" by the clock.
    expect(await verifyTotp(t.db.kysely, sealer, accountId, code, at(T + 30))).toEqual({ ok: false, reason: 'replayed' });
  });

  it('accepts a code from the previous step only if that step was not used', async () => {
    const { accountId, secret } = await enrolled();
    const previous = await codeAt(secret, T - 30);
    expect(await verifyTotp(t.db.kysely, sealer, accountId, previous, at(T))).toEqual({ ok: true });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, previous, at(T))).toEqual({ ok: false, reason: 'replayed' });
    // The current step is still available after the previous one was spent.
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(secret, T), at(T))).toEqual({ ok: true });
  });

  it('refuses a previous-step code once a later step was accepted', async () => {
    const { accountId, secret } = await enrolled();
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(secret, T), at(T))).toEqual({ ok: true });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(secret, T - 30), at(T))).toEqual({
      ok: false,
      reason: 'replayed',
    });
  });

  it('refuses a code two steps old or two steps ahead, and accepts one step ahead', async () => {
    const { accountId, secret } = await enrolled();
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(secret, T - 60), at(T))).toEqual({ ok: false, reason: 'invalid' });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(secret, T + 60), at(T))).toEqual({ ok: false, reason: 'invalid' });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(secret, T + 30), at(T))).toEqual({ ok: true });
  });

  it('lets exactly one of many concurrent requests with the same code pass', async () => {
    const { accountId, secret } = await enrolled();
    const code = await codeAt(secret, T);
    const results = await Promise.all(Array.from({ length: 8 }, () => verifyTotp(t.db.kysely, sealer, accountId, code, at(T))));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.reason === 'replayed')).toHaveLength(7);
  });

  it('refuses wrong, malformed and foreign codes as invalid, and accepts spaces', async () => {
    const { accountId, secret } = await enrolled();
    const code = await codeAt(secret, T);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    expect(await verifyTotp(t.db.kysely, sealer, accountId, wrong, at(T))).toEqual({ ok: false, reason: 'invalid' });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, `${code}0`, at(T))).toEqual({ ok: false, reason: 'invalid' });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, "' or 1=1 --", at(T))).toEqual({ ok: false, reason: 'invalid' });
    const other = await enrolled('other@example.com');
    expect(await verifyTotp(t.db.kysely, sealer, other.accountId, code, at(T))).not.toEqual({ ok: true });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, `${code.slice(0, 3)} ${code.slice(3)}`, at(T))).toEqual({ ok: true });
  });

  it('does not accept a code for an unconfirmed enrollment, and the confirming code is spent', async () => {
    const account = await createAccount(t.db.kysely, { email: 'una@example.com', role: 'viewer', passwordHash: null });
    const e = await newTotpEnrollment(t.db.kysely, sealer, account.id, 'una@example.com');
    const code = await codeAt(e.secretBase32, T);
    expect(await verifyTotp(t.db.kysely, sealer, account.id, code, at(T))).toEqual({ ok: false, reason: 'not_enrolled' });
    expect(await confirmTotp(t.db.kysely, sealer, account.id, e.id, '000000', at(T - 3600))).toBe(false);
    expect(await confirmTotp(t.db.kysely, sealer, account.id, e.id, code, at(T))).toBe(true);
    expect(await verifyTotp(t.db.kysely, sealer, account.id, code, at(T))).toEqual({ ok: false, reason: 'replayed' });
    await expect(confirmTotp(t.db.kysely, sealer, account.id, e.id, code, at(T))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuses an enrollment for an account that does not exist', async () => {
    await expect(newTotpEnrollment(t.db.kysely, sealer, 'usr_nobody', 'x@example.com')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it("cannot confirm another person's enrollment", async () => {
    const a = await createAccount(t.db.kysely, { email: 'a@example.com', role: 'viewer', passwordHash: null });
    const b = await createAccount(t.db.kysely, { email: 'b@example.com', role: 'viewer', passwordHash: null });
    const e = await newTotpEnrollment(t.db.kysely, sealer, a.id, 'a@example.com');
    await expect(confirmTotp(t.db.kysely, sealer, b.id, e.id, await codeAt(e.secretBase32, T), at(T))).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('keeps the old credential until a new enrollment is confirmed, then only the new one works', async () => {
    const { accountId, secret: oldSecret } = await enrolled();
    const e = await newTotpEnrollment(t.db.kysely, sealer, accountId, 'tess@example.com');
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(oldSecret, T - 600), at(T - 600))).toEqual({ ok: true });
    expect(await confirmTotp(t.db.kysely, sealer, accountId, e.id, await codeAt(e.secretBase32, T - 300), at(T - 300))).toBe(true);
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(oldSecret, T), at(T))).toEqual({ ok: false, reason: 'invalid' });
    expect(await verifyTotp(t.db.kysely, sealer, accountId, await codeAt(e.secretBase32, T), at(T))).toEqual({ ok: true });
    const rows = await t.db.kysely.selectFrom('totp_credential').select('id').where('account_id', '=', accountId).execute();
    expect(rows.map((r) => r.id)).toEqual([e.id]);
  });

  it('stores the seed only sealed, bound to its row', async () => {
    const { accountId, secret, id } = await enrolled();
    const seed = Buffer.from(base32.decode(secret));
    const row = await t.db.kysely.selectFrom('totp_credential').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const stored = JSON.stringify(row);
    for (const form of [
      secret,
      secret.toLowerCase(),
      seed.toString('hex'),
      seed.toString('base64'),
      seed.toString('base64url'),
      seed.toString('latin1'),
    ]) {
      expect(stored).not.toContain(form);
    }
    expect(sealer.open(row.seed_sealed, `totp:${id}`).equals(seed)).toBe(true);
    // Copied onto another person's row, the sealed seed does not open.
    const other = await enrolled('other@example.com');
    await t.db.kysely.updateTable('totp_credential').set({ seed_sealed: row.seed_sealed }).where('id', '=', other.id).execute();
    await expect(verifyTotp(t.db.kysely, sealer, other.accountId, await codeAt(secret, T), at(T))).rejects.toThrow(/cannot open/);
    expect(accountId).not.toBe(other.accountId);
  });
});

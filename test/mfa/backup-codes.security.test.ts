// Attacks on backup codes: reuse, a stale set, races, and a database read.
import crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAccount } from '../../src/accounts/accounts.service.ts';
import {
  BACKUP_CODE_ALPHABET,
  deriveBackupCodeKey,
  normalizeBackupCode,
  regenerateBackupCodes,
  remainingBackupCodes,
  useBackupCode,
} from '../../src/mfa/backup-codes.ts';
import { BACKENDS, freshDb, type TestDb } from '../helpers/db.ts';

const key = deriveBackupCodeKey(crypto.randomBytes(32));

describe('normalizeBackupCode', () => {
  it('ignores case, spaces and dashes', () => {
    expect(normalizeBackupCode(' ABCDE-fghjk ')).toBe('abcdefghjk');
    expect(normalizeBackupCode('abcde fghjk')).toBe('abcdefghjk');
    expect(normalizeBackupCode('abc\u2010de\u2013fghjk')).toBe('abcdefghjk');
  });

  it.each(['abcde-fghj', 'abcde-fghjkm', 'abcde-fghj0', 'abcde-fghjl', "' or 1=1 --", ''])('refuses %j', (input) => {
    expect(normalizeBackupCode(input)).toBeNull();
  });
});

describe('deriveBackupCodeKey', () => {
  it('gives a 32-byte key that depends on the master key', () => {
    const master = crypto.randomBytes(32);
    expect(deriveBackupCodeKey(master)).toHaveLength(32);
    expect(deriveBackupCodeKey(master).equals(deriveBackupCodeKey(Buffer.from(master)))).toBe(true);
    expect(deriveBackupCodeKey(master).equals(master)).toBe(false);
    expect(deriveBackupCodeKey(master).equals(deriveBackupCodeKey(crypto.randomBytes(32)))).toBe(false);
  });
});

describe.each(BACKENDS)('backup codes on %s', (backend) => {
  let t: TestDb;
  let accountId: string;

  beforeEach(async () => {
    t = await freshDb(backend);
    accountId = (await createAccount(t.db.kysely, { email: 'bea@example.com', role: 'viewer', passwordHash: null })).id;
  });
  afterEach(() => t.drop());

  it('issues 10 distinct codes of 10 unambiguous characters, shown as xxxxx-xxxxx', async () => {
    const codes = await regenerateBackupCodes(t.db.kysely, key, accountId);
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    const shape = new RegExp(`^[${BACKUP_CODE_ALPHABET}]{5}-[${BACKUP_CODE_ALPHABET}]{5}$`);
    for (const c of codes) expect(c).toMatch(shape);
    expect(BACKUP_CODE_ALPHABET).not.toMatch(/[01ilo]/);
    expect(await remainingBackupCodes(t.db.kysely, accountId)).toBe(10);
  });

  it('accepts a code once, then refuses it', async () => {
    const [code] = await regenerateBackupCodes(t.db.kysely, key, accountId);
    expect(await useBackupCode(t.db.kysely, key, accountId, code)).toBe(true);
    expect(await useBackupCode(t.db.kysely, key, accountId, code)).toBe(false);
    expect(await useBackupCode(t.db.kysely, key, accountId, code!.toUpperCase().replace('-', ' '))).toBe(false);
    expect(await remainingBackupCodes(t.db.kysely, accountId)).toBe(9);
  });

  it('accepts a code typed in upper case with spaces instead of the dash', async () => {
    const codes = await regenerateBackupCodes(t.db.kysely, key, accountId);
    expect(await useBackupCode(t.db.kysely, key, accountId, ` ${codes[3]!.toUpperCase().replace('-', ' ')} `)).toBe(true);
  });

  it('refuses wrong and malformed codes without spending anything', async () => {
    await regenerateBackupCodes(t.db.kysely, key, accountId);
    expect(await useBackupCode(t.db.kysely, key, accountId, 'aaaaa-aaaaa')).toBe(false);
    expect(await useBackupCode(t.db.kysely, key, accountId, "x' or '1'='1")).toBe(false);
    expect(await useBackupCode(t.db.kysely, key, accountId, 42)).toBe(false);
    expect(await remainingBackupCodes(t.db.kysely, accountId)).toBe(10);
  });

  it('invalidates the whole old set on regeneration', async () => {
    const old = await regenerateBackupCodes(t.db.kysely, key, accountId);
    const fresh = await regenerateBackupCodes(t.db.kysely, key, accountId);
    for (const code of old) expect(await useBackupCode(t.db.kysely, key, accountId, code)).toBe(false);
    expect(await remainingBackupCodes(t.db.kysely, accountId)).toBe(10);
    expect(await useBackupCode(t.db.kysely, key, accountId, fresh[0])).toBe(true);
  });

  it('lets exactly one of many concurrent uses of one code pass', async () => {
    const [code] = await regenerateBackupCodes(t.db.kysely, key, accountId);
    const results = await Promise.all(Array.from({ length: 8 }, () => useBackupCode(t.db.kysely, key, accountId, code)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it("does not accept one person's code for another", async () => {
    const other = (await createAccount(t.db.kysely, { email: 'oz@example.com', role: 'viewer', passwordHash: null })).id;
    const [code] = await regenerateBackupCodes(t.db.kysely, key, accountId);
    await regenerateBackupCodes(t.db.kysely, key, other);
    expect(await useBackupCode(t.db.kysely, key, other, code)).toBe(false);
    expect(await useBackupCode(t.db.kysely, key, accountId, code)).toBe(true);
  });

  it('stores only keyed hashes: the rows hold no code, and another key opens nothing', async () => {
    const codes = await regenerateBackupCodes(t.db.kysely, key, accountId);
    const rows = await t.db.kysely.selectFrom('backup_code').selectAll().where('account_id', '=', accountId).execute();
    expect(rows).toHaveLength(10);
    const stored = JSON.stringify(rows);
    for (const code of codes) {
      const bare = code.replace('-', '');
      expect(stored).not.toContain(bare);
      expect(stored).not.toContain(code);
      // Not a plain SHA-256 either: that would be brute-forced from a leaked database alone.
      for (const enc of ['hex', 'base64', 'base64url'] as const) {
        expect(stored).not.toContain(crypto.createHash('sha256').update(bare).digest(enc));
      }
    }
    const otherKey = deriveBackupCodeKey(crypto.randomBytes(32));
    expect(await useBackupCode(t.db.kysely, otherKey, accountId, codes[0])).toBe(false);
  });
});

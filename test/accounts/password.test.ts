import { describe, expect, it } from 'vitest';
import {
  ARGON2_MEMORY_KIB,
  ARGON2_PARALLELISM,
  ARGON2_TIME_COST,
  checkNewPassword,
  hashPassword,
  passwordNeedsRehash,
  verifyPassword,
} from '../../src/accounts/password.ts';
import { GatehouseError } from '../../src/errors.ts';

function refusal(password: unknown, userInputs: string[] = []): GatehouseError {
  try {
    checkNewPassword(password, userInputs);
  } catch (err) {
    if (err instanceof GatehouseError) return err;
    throw err;
  }
  throw new Error('password was accepted');
}

describe('hashPassword / verifyPassword', () => {
  it('uses argon2id with the OWASP parameters', async () => {
    const hash = await hashPassword('violet tractor umbrella');
    expect(hash).toMatch(new RegExp(`^\\$argon2id\\$v=19\\$m=${ARGON2_MEMORY_KIB},p=${ARGON2_PARALLELISM},t=${ARGON2_TIME_COST}\\$`));
    expect(ARGON2_MEMORY_KIB).toBe(19456);
    expect(ARGON2_TIME_COST).toBe(2);
    expect(ARGON2_PARALLELISM).toBe(1);
    expect(passwordNeedsRehash(hash)).toBe(false);
  });

  it('accepts the right password and refuses a wrong one', async () => {
    const hash = await hashPassword('violet tractor umbrella');
    expect(await verifyPassword(hash, 'violet tractor umbrella')).toBe(true);
    expect(await verifyPassword(hash, 'violet tractor umbrellA')).toBe(false);
    expect(await verifyPassword(hash, '')).toBe(false);
  });

  it('normalizes with NFKC: a decomposed accent or full-width digits are the same password', async () => {
    const hash = await hashPassword('caf\u00e9 au lait 2024 matin');
    expect(await verifyPassword(hash, 'cafe\u0301 au lait 2024 matin')).toBe(true);
    expect(await verifyPassword(hash, 'caf\u00e9 au lait \uff12\uff10\uff12\uff14 matin')).toBe(true);
  });

  it('returns false for an unknown account (null hash) after running the dummy verification', async () => {
    expect(await verifyPassword(null, 'violet tractor umbrella')).toBe(false);
    expect(await verifyPassword(null, '')).toBe(false);
  });

  it('returns false for input that is not a password', async () => {
    const hash = await hashPassword('violet tractor umbrella');
    expect(await verifyPassword(hash, undefined)).toBe(false);
    expect(await verifyPassword(hash, { toString: () => 'violet tractor umbrella' })).toBe(false);
    expect(await verifyPassword(hash, 'x'.repeat(100_000))).toBe(false);
  });

  it('flags a hash made with weaker parameters for re-hashing', () => {
    expect(passwordNeedsRehash('$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0$3s1Z3Yq1K4m1gqdtq3X8Gk1Vx1yq3p0f3bQZ7kq9H2E')).toBe(true);
  });
});

describe('checkNewPassword', () => {
  it.each(['password1234', 'aaaaaaaaaaaa', 'qwertyuiopasdf'])('refuses the weak %j with the estimator advice, without echoing it', (pw) => {
    const err = refusal(pw);
    expect(err.code).toBe('VALIDATION');
    expect(err.details).toMatchObject({ field: 'password', reason: 'too_weak' });
    expect(err.message).toMatch(/^Password is too easy to guess\. .+\. .+/);
    expect(err.message).not.toContain(pw);
  });

  it('refuses 11 characters and accepts a strong 12', () => {
    const err = refusal('Xk9#mQ2$vL7');
    expect(err.details).toMatchObject({ reason: 'too_short' });
    expect(err.message).toBe('Password must be at least 12 characters long.');
    expect(() => checkNewPassword('Tz8!qWv3#Lp9')).not.toThrow();
  });

  it('counts code points, not UTF-16 units: six emoji are six characters', () => {
    const six = '\u{1F512}\u{1F511}\u{1F3F0}\u{1F409}\u{1F525}\u{1F319}';
    expect(six.length).toBe(12);
    expect(refusal(six).details).toMatchObject({ reason: 'too_short' });
  });

  it('accepts 64 and more characters, up to 128', () => {
    const long = 'correct horse battery staple and then some more words to make this sixty-four';
    expect(long.length).toBeGreaterThanOrEqual(64);
    expect(() => checkNewPassword(long)).not.toThrow();
    const max = 'Lantern-orbit-pebble-quasar-'.repeat(5).slice(0, 128);
    expect(max).toHaveLength(128);
    expect(() => checkNewPassword(max)).not.toThrow();
    expect(refusal(max + 'x').details).toMatchObject({ reason: 'too_long' });
  });

  it('accepts unicode passphrases', () => {
    expect(() => checkNewPassword('Gr\u00fcne \u00c4pfel fallen leise im Herbstwind')).not.toThrow();
    expect(() => checkNewPassword('\u65e5\u672c\u8a9e\u306e\u30d1\u30b9\u30d5\u30ec\u30fc\u30ba\u3067\u3059\u5b89\u5168')).not.toThrow();
  });

  it('has no composition rules: all lower-case words pass', () => {
    expect(() => checkNewPassword('lantern orbit pebble quasar')).not.toThrow();
  });

  it("treats the person's email as a dictionary word", () => {
    expect(() => checkNewPassword('marguerite.fontaine1')).not.toThrow();
    const err = refusal('marguerite.fontaine1', ['marguerite.fontaine@example.com']);
    expect(err.details).toMatchObject({ reason: 'too_weak' });
    expect(err.message).toContain('personal');
  });

  it('refuses a missing password', () => {
    expect(refusal('').details).toMatchObject({ reason: 'required' });
    expect(refusal(undefined).details).toMatchObject({ reason: 'required' });
  });
});

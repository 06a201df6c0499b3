import { describe, expect, it } from 'vitest';
import { normalizeEmail } from '../../src/accounts/email.ts';
import { GatehouseError } from '../../src/errors.ts';

function refusal(input: unknown): GatehouseError {
  try {
    normalizeEmail(input);
  } catch (err) {
    if (err instanceof GatehouseError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

describe('normalizeEmail', () => {
  it('trims and lower-cases, so one person has one spelling', () => {
    expect(normalizeEmail('  Ana.Lima@Example.COM \n')).toBe('ana.lima@example.com');
  });

  it('maps composed and decomposed accents to the same NFC string', () => {
    const composed = normalizeEmail('J\u00e9r\u00f4me@example.fr');
    const decomposed = normalizeEmail('Je\u0301ro\u0302me@EXAMPLE.fr');
    expect(decomposed).toBe(composed);
    expect(composed).toBe('j\u00e9r\u00f4me@example.fr');
  });

  it.each([
    ['', 'Email is required.'],
    ['   ', 'Email is required.'],
    ['no-at-sign.example.com', 'name@example.com'],
    ['two@@example.com', 'name@example.com'],
    ['a@nodot', 'name@example.com'],
    ['spa ce@example.com', 'name@example.com'],
    ['nul\u0000@example.com', 'name@example.com'],
    ["x' or 1=1--@example.com'", 'name@example.com'],
  ])('refuses %j with a VALIDATION error that says why', (input, says) => {
    const err = refusal(input);
    expect(err.code).toBe('VALIDATION');
    expect(err.message).toContain(says);
    expect(err.details).toEqual({ field: 'email' });
  });

  it('refuses a non-string', () => {
    expect(refusal(42).code).toBe('VALIDATION');
    expect(refusal(null).code).toBe('VALIDATION');
  });

  it('accepts 254 bytes and refuses 255 (RFC 5321 path limit)', () => {
    const domain = '@example.com';
    expect(normalizeEmail('a'.repeat(254 - domain.length) + domain)).toHaveLength(254);
    expect(refusal('a'.repeat(255 - domain.length) + domain).message).toContain('254');
  });

  it('counts the limit in UTF-8 bytes, not characters', () => {
    const domain = '@example.com';
    const local = '\u00e9'.repeat(122); // 244 bytes in 122 characters
    expect(refusal(local + domain).code).toBe('VALIDATION');
  });
});

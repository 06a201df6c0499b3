// RFC 6238 Appendix B test vectors, and the pure helpers around them.
import { describe, expect, it } from 'vitest';
import { normalizeTotpCode, timeStep, totpAt } from '../../src/mfa/totp.ts';

const SHA1_SEED = Buffer.from('12345678901234567890', 'ascii');
const SHA256_SEED = Buffer.from('12345678901234567890123456789012', 'ascii');
const SHA512_SEED = Buffer.from('1234567890123456789012345678901234567890123456789012345678901234', 'ascii');

// time, SHA-1, SHA-256, SHA-512 (RFC 6238 Appendix B, 8 digits)
const VECTORS: [number, string, string, string][] = [
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
];

describe('totpAt (RFC 6238 Appendix B)', () => {
  it.each(VECTORS)('T=%i gives the SHA-1 code %s', async (t, sha1) => {
    expect(await totpAt(SHA1_SEED, t, 8, 'sha1')).toBe(sha1);
  });

  it.each(VECTORS)('T=%i gives the SHA-256 and SHA-512 codes', async (t, _sha1, sha256, sha512) => {
    expect(await totpAt(SHA256_SEED, t, 8, 'sha256')).toBe(sha256);
    expect(await totpAt(SHA512_SEED, t, 8, 'sha512')).toBe(sha512);
  });

  it('defaults to 6 digits of the same value (RFC 4226 truncation)', async () => {
    expect(await totpAt(SHA1_SEED, 59)).toBe('287082');
    expect(await totpAt(SHA1_SEED, 1111111109)).toBe('081804');
  });

  it('is constant within a 30-second step and changes at its boundary', async () => {
    expect(timeStep(59)).toBe(1);
    expect(await totpAt(SHA1_SEED, 30)).toBe(await totpAt(SHA1_SEED, 59));
    expect(await totpAt(SHA1_SEED, 60)).not.toBe(await totpAt(SHA1_SEED, 59));
  });
});

describe('normalizeTotpCode', () => {
  it('strips spaces', () => {
    expect(normalizeTotpCode(' 123 456 ')).toBe('123456');
  });

  it.each(['12345', '1234567', '12345a', '\uff11\uff12\uff13\uff14\uff15\uff16', '\u0661\u0662\u0663\u0664\u0665\u0666', '123-456', ''])(
    'refuses %j',
    (input) => {
      expect(normalizeTotpCode(input)).toBeNull();
    },
  );

  it('refuses a non-string', () => {
    expect(normalizeTotpCode(123456)).toBeNull();
  });
});

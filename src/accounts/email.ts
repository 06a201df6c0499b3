// One person, one row: the account table keeps emails trimmed, NFC-normalized and lower-cased,
// so "Ana@Example.com", " ana@example.com" and a decomposed "é" all find the same account.
// Lower-casing the local part goes beyond RFC 5321 (which lets a server treat it as case
// sensitive), but no mail system in use does, and two accounts differing only by case would be
// a phishing aid.
import { GatehouseError } from '../errors.ts';

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets. */
export const MAX_EMAIL_OCTETS = 254;

// A sanity check, not RFC 5322: one "@", something on each side, a dot in the domain, no
// whitespace or control characters. Deliverability is proven by the invitation link itself.
const EMAIL_RE = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}.][^\s@\p{Cc}]*\.[^\s@\p{Cc}.]+$/u;

export function normalizeEmail(input: unknown): string {
  if (typeof input !== 'string') throw invalid('Email is required.');
  // Lower-casing can produce a non-NFC string for a few code points, so NFC runs again after it.
  const email = input.trim().normalize('NFC').toLowerCase().normalize('NFC');
  if (email === '') throw invalid('Email is required.');
  if (Buffer.byteLength(email, 'utf8') > MAX_EMAIL_OCTETS) throw invalid(`Email must be at most ${MAX_EMAIL_OCTETS} bytes long.`);
  if (!EMAIL_RE.test(email)) throw invalid('Email must look like name@example.com.');
  return email;
}

function invalid(message: string): GatehouseError {
  return new GatehouseError('VALIDATION', message, { field: 'email' });
}

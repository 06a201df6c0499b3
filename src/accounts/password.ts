// Passwords: argon2id, length over composition, a strength estimate instead of rules, and the
// same cost whether or not the account exists.
import crypto from 'node:crypto';
import argon2 from 'argon2';
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as zxcvbnCommon from '@zxcvbn-ts/language-common';
import * as zxcvbnEn from '@zxcvbn-ts/language-en';
import { GatehouseError } from '../errors.ts';

// OWASP Password Storage Cheat Sheet, "Argon2id": "a minimum configuration of 19 MiB of memory,
// an iteration count of 2, and 1 degree of parallelism". About 30 ms per hash on one core.
export const ARGON2_MEMORY_KIB = 19456;
export const ARGON2_TIME_COST = 2;
export const ARGON2_PARALLELISM = 1;

// NIST SP 800-63B §3.1.1.2 asks for at least 8 characters behind a second factor and 15 as a
// single factor; every Gatehouse person has a second factor, and 12 is the floor (docs/architecture.md, "Accounts and sign-in").
export const MIN_PASSWORD_LENGTH = 12;
// NIST asks that at least 64 be allowed. The cap bounds the strength estimator's work (it
// grows faster than linearly with length), not argon2's, which pre-hashes its input.
export const MAX_PASSWORD_LENGTH = 128;
/** zxcvbn score 3: "safely unguessable: moderate protection from offline slow-hash scenario". */
export const MIN_ZXCVBN_SCORE = 3;
/** Anything longer than this is not a password anybody typed: refuse it without normalizing it. */
const MAX_INPUT_UTF16 = 4 * MAX_PASSWORD_LENGTH;

const ARGON2_OPTIONS = {
  type: argon2.argon2id,
  memoryCost: ARGON2_MEMORY_KIB,
  timeCost: ARGON2_TIME_COST,
  parallelism: ARGON2_PARALLELISM,
} as const;

// NIST SP 800-63B §3.1.1.2: apply NFKC before hashing, so that the same passphrase typed on
// two keyboards (composed "é" or "e" + combining accent, full-width digits) is the same secret.
function normalize(password: string): string {
  return password.normalize('NFKC');
}

export async function hashPassword(password: string): Promise<string> {
  return argon2.hash(normalize(password), ARGON2_OPTIONS);
}

// Computed once, at module load, and verified against whenever there is no real hash: an
// unknown email then costs one argon2 run like a wrong password does, so response time does
// not tell an attacker which emails have accounts. The password it hashes is thrown away.
const dummyHash: Promise<string> = argon2.hash(crypto.randomBytes(32).toString('base64url'), ARGON2_OPTIONS);
dummyHash.catch(() => {}); // a failure surfaces at the first verifyPassword, not as an unhandled rejection

/**
 * Always runs exactly one argon2 verification. `hash` null (no such account, or a passkey-only
 * person) and malformed input are checked against the dummy hash and return false.
 */
export async function verifyPassword(hash: string | null, password: unknown): Promise<boolean> {
  const usable = typeof password === 'string' && password.length > 0 && password.length <= MAX_INPUT_UTF16;
  const candidate = usable ? normalize(password) : 'x';
  if (hash === null || !usable) {
    await argon2.verify(await dummyHash, candidate);
    return false;
  }
  return argon2.verify(hash, candidate);
}

/** True when a stored hash was made with older parameters: re-hash it after a successful sign-in. */
export function passwordNeedsRehash(hash: string): boolean {
  return argon2.needsRehash(hash, { memoryCost: ARGON2_MEMORY_KIB, timeCost: ARGON2_TIME_COST, parallelism: ARGON2_PARALLELISM });
}

// Levenshtein matching is off: it adds about 100 ms of blocking CPU per check, and the
// dictionary, l33t, spatial and sequence matchers already catch the common passwords.
// Built at first use: ranking the dictionaries takes a moment that the CLI need not pay.
let zxcvbn: ZxcvbnFactory | null = null;
function estimator(): ZxcvbnFactory {
  zxcvbn ??= new ZxcvbnFactory({
    translations: zxcvbnEn.translations,
    graphs: zxcvbnCommon.adjacencyGraphs,
    dictionary: { ...zxcvbnCommon.dictionary, ...zxcvbnEn.dictionary },
  });
  return zxcvbn;
}

/** The email and its parts, so "jane.doe2024!" is recognised as built from jane.doe@…. */
function expandUserInputs(inputs: readonly string[]): string[] {
  const out = new Set<string>();
  for (const input of inputs) {
    if (typeof input !== 'string' || input === '') continue;
    const value = input.toLowerCase();
    out.add(value);
    const at = value.lastIndexOf('@');
    if (at > 0) {
      const local = value.slice(0, at);
      out.add(local);
      for (const part of [...local.split(/[._+-]/), ...value.slice(at + 1).split('.')]) if (part.length >= 3) out.add(part);
    }
  }
  return [...out];
}

function weak(message: string, reason: string): GatehouseError {
  return new GatehouseError('VALIDATION', message, { field: 'password', reason });
}

/**
 * Throws GatehouseError VALIDATION saying why a new password is refused, with the strength
 * estimator's advice. No composition rules (NIST SP 800-63B §3.1.1.2). Messages never
 * contain the password.
 */
export function checkNewPassword(password: unknown, userInputs: readonly string[] = []): void {
  if (typeof password !== 'string' || password.length === 0) throw weak('Password is required.', 'required');
  if (password.length > MAX_INPUT_UTF16) throw weak(`Password must be at most ${MAX_PASSWORD_LENGTH} characters long.`, 'too_long');
  const normalized = normalize(password);
  const length = [...normalized].length; // code points, so an emoji or "é" counts once
  if (length < MIN_PASSWORD_LENGTH) throw weak(`Password must be at least ${MIN_PASSWORD_LENGTH} characters long.`, 'too_short');
  if (length > MAX_PASSWORD_LENGTH) throw weak(`Password must be at most ${MAX_PASSWORD_LENGTH} characters long.`, 'too_long');
  const result = estimator().check(normalized, expandUserInputs(userInputs));
  if (result.score < MIN_ZXCVBN_SCORE) {
    const why = result.feedback.warning ?? 'This password would be easy to guess.';
    const advice = result.feedback.suggestions[0] ?? 'Add another word or two. Uncommon words are better.';
    throw weak(`Password is too easy to guess. ${why} ${advice}`, 'too_weak');
  }
}

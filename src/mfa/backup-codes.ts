// Backup codes: ten one-time codes shown once, for the day the phone is lost.
//
// Why a keyed hash (HMAC-SHA256 under a key derived from the master key) and not SHA-256 or
// argon2: a code carries about 50 bits. A plain fast hash of 50 bits falls to a GPU in hours
// given only a database dump; a slow hash would cost ~30 ms per stored code at every attempt.
// With HMAC, the dump alone is useless: guessing needs the master key, which never sits in
// the database. Each hash also binds the account id, so a row copied to another account does
// not open it.
import crypto from 'node:crypto';
import { deriveKey } from '../crypto/derive-key.ts';
import * as repo from '../accounts/factors.repository.ts';
import { inTransaction } from '../db/transaction.ts';
import type { Db } from '../db/handle.ts';

export const BACKUP_CODE_COUNT = 10;
export const BACKUP_CODE_LENGTH = 10;
/** Lower-case letters and digits without 0/o, 1/l/i: 31 symbols, so 10 carry 49.5 bits. */
export const BACKUP_CODE_ALPHABET = '23456789abcdefghjkmnpqrstuvwxyz';

const CODE_RE = new RegExp(`^[${BACKUP_CODE_ALPHABET}]{${BACKUP_CODE_LENGTH}}$`);

/** The HMAC key for backup codes: HKDF-SHA256 of the master key, for this use only. */
export function deriveBackupCodeKey(masterKey: Buffer): Buffer {
  return deriveKey(masterKey, 'gatehouse backup-code hmac v1');
}

function hashCode(key: Buffer, accountId: string, code: string): string {
  if (key.length < 32) throw new Error('backup code key must be at least 32 bytes');
  return crypto.createHmac('sha256', key).update(`${accountId}\0${code}`, 'utf8').digest('base64url');
}

function randomCode(): string {
  let out = '';
  for (let i = 0; i < BACKUP_CODE_LENGTH; i++) out += BACKUP_CODE_ALPHABET[crypto.randomInt(BACKUP_CODE_ALPHABET.length)];
  return out;
}

/** `xxxxx-xxxxx`, as shown to the person. */
export function formatBackupCode(code: string): string {
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

/** What a person types, made comparable: case, spaces and dashes do not matter. Null if it cannot be a code. */
export function normalizeBackupCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const code = input
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\s\u002d\u2010-\u2015\u2212]+/g, '');
  return CODE_RE.test(code) ? code : null;
}

/**
 * A new set of codes for the person, replacing the old set entirely (every old code, used or
 * not, stops working). Returns the codes in clear, formatted; they are never available again.
 */
export async function regenerateBackupCodes(trx: Db, key: Buffer, accountId: string): Promise<string[]> {
  const codes = new Set<string>();
  while (codes.size < BACKUP_CODE_COUNT) codes.add(randomCode());
  const hashes = [...codes].map((c) => hashCode(key, accountId, c));
  await inTransaction(trx, (t) => repo.replaceBackupCodes(t, accountId, hashes));
  return [...codes].map(formatBackupCode);
}

/** Spend one code: true once, false for a wrong, malformed or already used code. */
export async function useBackupCode(db: Db, key: Buffer, accountId: string, input: unknown): Promise<boolean> {
  const code = normalizeBackupCode(input);
  if (!code) return false;
  return repo.spendBackupCode(db, accountId, hashCode(key, accountId, code));
}

export function remainingBackupCodes(db: Db, accountId: string): Promise<number> {
  return repo.countUnusedBackupCodes(db, accountId);
}

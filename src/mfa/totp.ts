// TOTP (RFC 6238) as every authenticator app speaks it: SHA-1, 6 digits, 30-second steps. The
// seed is sealed under the master key, bound to its row; a code is accepted once.
import crypto from 'node:crypto';
import { generate, generateURI, ScureBase32Plugin, verify } from 'otplib';
import QRCode from 'qrcode';
import * as repo from '../accounts/factors.repository.ts';
import { inTransaction } from '../db/transaction.ts';
import type { Sealer } from '../crypto/seal.ts';
import { GatehouseError } from '../errors.ts';
import type { Db } from '../db/handle.ts';

export type TotpAlgorithm = 'sha1' | 'sha256' | 'sha512';

export const TOTP_ISSUER = 'Gatehouse';
// The values authenticator apps assume when an otpauth URI omits them (Google Authenticator's
// Key Uri Format); several apps ignore any other value, so these are not configurable.
export const TOTP_ALGORITHM: TotpAlgorithm = 'sha1';
export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;
/** RFC 6238 §5.2 allows for clock drift and transmission delay; one step each way is the usual figure. */
export const TOTP_WINDOW_STEPS = 1;
/** RFC 4226 §4 R6: a shared secret of at least 128 bits, 160 recommended (the SHA-1 block output). */
export const TOTP_SEED_BYTES = 20;

const base32 = new ScureBase32Plugin();

/** The code for a secret at a time: the pure RFC 6238 function the Appendix B vectors check. */
export function totpAt(
  secret: Uint8Array,
  unixSeconds: number,
  digits: 6 | 7 | 8 = TOTP_DIGITS,
  algorithm: TotpAlgorithm = TOTP_ALGORITHM,
): Promise<string> {
  return generate({ secret, epoch: unixSeconds, digits, algorithm, period: TOTP_PERIOD_SECONDS });
}

export function timeStep(unixSeconds: number): number {
  return Math.floor(unixSeconds / TOTP_PERIOD_SECONDS);
}

/** What a TOTP seed is sealed to: its row (also used by the master-key rotation, src/keys/master-key.ts). */
export function totpSealContext(id: string): string {
  return `totp:${id}`;
}

/** Exactly six ASCII digits, spaces allowed ("123 456" as some apps show it). */
export function normalizeTotpCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 32) return null;
  const code = input.replace(/\s+/g, '');
  return /^[0-9]{6}$/.test(code) ? code : null;
}

/** The step a code matches within the window at `epoch`, or null. `afterStep` skips used steps. */
async function matchingStep(seed: Uint8Array, code: string, epoch: number, afterStep: number | null): Promise<number | null> {
  const maxStep = timeStep(epoch) + TOTP_WINDOW_STEPS;
  // otplib refuses an afterTimeStep beyond the window; a step recorded that far ahead (an
  // instance with a fast clock) already rules out the whole window.
  const after = afterStep === null ? undefined : Math.min(afterStep, maxStep);
  const result = await verify({
    secret: seed,
    token: code,
    epoch,
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    epochTolerance: TOTP_WINDOW_STEPS * TOTP_PERIOD_SECONDS,
    ...(after === undefined ? {} : { afterTimeStep: after }),
  });
  // verify() types HOTP and TOTP results together; only a TOTP result carries timeStep.
  return result.valid && 'timeStep' in result ? result.timeStep : null;
}

export interface TotpEnrollment {
  id: string;
  /** Shown as text for people who type the key in. */
  secretBase32: string;
  otpauthUrl: string;
  qrSvg: string;
}

/** A fresh seed and how to show it, before it is stored anywhere. */
export async function newTotpSeed(email: string): Promise<Omit<TotpEnrollment, 'id'> & { seed: Buffer }> {
  const seed = crypto.randomBytes(TOTP_SEED_BYTES);
  return { seed, ...(await describeTotpSeed(seed, email)) };
}

/** Show a seed again (a reloaded enrollment page keeps the seed the person may have scanned). */
export async function describeTotpSeed(seed: Uint8Array, email: string): Promise<Omit<TotpEnrollment, 'id'>> {
  const secretBase32 = base32.encode(seed, { padding: false });
  const otpauthUrl = generateURI({
    issuer: TOTP_ISSUER,
    label: email,
    secret: secretBase32,
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  });
  const qrSvg = await QRCode.toString(otpauthUrl, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return { secretBase32, otpauthUrl, qrSvg };
}

/** The step a code for a not-yet-stored seed matches now, or null (enrollment's confirmation). */
export async function checkCodeForSeed(seed: Uint8Array, code: unknown, now = new Date()): Promise<number | null> {
  const token = normalizeTotpCode(code);
  return token ? matchingStep(seed, token, Math.floor(now.getTime() / 1000), null) : null;
}

/** Store a confirmed seed for the account, its confirming step spent (enrollment's last step). */
export async function adoptTotpSeed(db: Db, sealer: Sealer, accountId: string, seed: Uint8Array, step: number): Promise<void> {
  const id = `totp_${crypto.randomBytes(15).toString('base64url')}`;
  await inTransaction(db, async (trx) => {
    await repo.deleteAllTotp(trx, accountId);
    await repo.insertTotp(trx, { id, account_id: accountId, seed_sealed: sealer.seal(Buffer.from(seed), totpSealContext(id)) });
    await repo.confirmTotp(trx, accountId, id, step);
  });
}

/**
 * A fresh seed for `accountId`, unconfirmed until confirmTotp() sees a code from it. An
 * earlier unconfirmed enrollment is dropped; a confirmed credential keeps working meanwhile.
 */
export async function newTotpEnrollment(db: Db, sealer: Sealer, accountId: string, email: string): Promise<TotpEnrollment> {
  const id = `totp_${crypto.randomBytes(15).toString('base64url')}`;
  const { seed, secretBase32, otpauthUrl, qrSvg } = await newTotpSeed(email);
  await inTransaction(db, async (trx) => {
    await repo.deleteUnconfirmedTotp(trx, accountId);
    await repo.insertTotp(trx, { id, account_id: accountId, seed_sealed: sealer.seal(seed, totpSealContext(id)) });
  }).catch((err: { code?: string }) => {
    if (err.code === '23503') throw new GatehouseError('NOT_FOUND', 'No such account.'); // foreign key: no account row
    throw err;
  });
  return { id, secretBase32, otpauthUrl, qrSvg };
}

/** Show an unconfirmed enrollment again (the person typed a wrong code and tries again). */
export async function describePendingTotp(
  db: Db,
  sealer: Sealer,
  accountId: string,
  id: string,
  email: string,
): Promise<TotpEnrollment | null> {
  const row = await repo.findUnconfirmedTotp(db, accountId, id);
  if (!row) return null;
  return { id, ...(await describeTotpSeed(sealer.open(row.seed_sealed, totpSealContext(row.id)), email)) };
}

/**
 * Confirm an enrollment with a code from the app. On success the credential becomes the
 * person's only TOTP credential, and the confirming code's step is recorded so that the same
 * code cannot also pass the sign-in step. False for a wrong code.
 */
export async function confirmTotp(
  db: Db,
  sealer: Sealer,
  accountId: string,
  id: string,
  code: unknown,
  opts: { now?: Date } = {},
): Promise<boolean> {
  const token = normalizeTotpCode(code);
  const row = await repo.findUnconfirmedTotp(db, accountId, id);
  if (!row) throw new GatehouseError('NOT_FOUND', 'This authenticator setup was not found or is already finished. Start again.');
  if (!token) return false;
  const seed = sealer.open(row.seed_sealed, totpSealContext(row.id));
  const step = await matchingStep(seed, token, Math.floor((opts.now ?? new Date()).getTime() / 1000), null);
  if (step === null) return false;
  return inTransaction(db, async (trx) => {
    if (!(await repo.confirmTotp(trx, accountId, id, step))) return false; // confirmed concurrently
    await repo.deleteOtherTotp(trx, accountId, id);
    return true;
  });
}

export type TotpVerification = { ok: true } | { ok: false; reason: 'invalid' | 'replayed' | 'not_enrolled' };

/**
 * The sign-in check. A code of a step at or before the last accepted one is refused as
 * replayed (RFC 6238 §5.2), and the step is recorded with one conditional UPDATE, so two
 * concurrent requests carrying the same code cannot both pass.
 */
export async function verifyTotp(
  db: Db,
  sealer: Sealer,
  accountId: string,
  code: unknown,
  opts: { now?: Date } = {},
): Promise<TotpVerification> {
  const row = await repo.findConfirmedTotp(db, accountId);
  if (!row) return { ok: false, reason: 'not_enrolled' };
  const token = normalizeTotpCode(code);
  if (!token) return { ok: false, reason: 'invalid' };
  const seed = sealer.open(row.seed_sealed, totpSealContext(row.id));
  const epoch = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const lastStep = row.last_used_step === null ? null : Number(row.last_used_step);
  const step = await matchingStep(seed, token, epoch, lastStep);
  if (step === null) {
    // Tell a replay from a wrong code: the audit log and the rate limiter treat them apart.
    const any = lastStep === null ? null : await matchingStep(seed, token, epoch, null);
    return { ok: false, reason: any === null ? 'invalid' : 'replayed' };
  }
  if (!(await repo.recordTotpStep(db, row.id, step))) return { ok: false, reason: 'replayed' };
  return { ok: true };
}

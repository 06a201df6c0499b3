// The audit log leaves the database (issue 8 §4; docs/architecture.md, "Audit log"), the way AWS
// CloudTrail's log-file validation does. With GATEHOUSE_AUDIT_EXPORT_DIR, every checkpoint also
// writes, for the events since the previous export:
//
//   audit-<first>-<last>.jsonl       one line per event: canonicalJson(exportedRow(row)), every
//                                    column of audit_event (hash included), in seq order
//   audit-<first>-<last>.digest.jws  a compact JWS (typ gatehouse-audit-digest+jws, kid named),
//                                    signed with a current signing key, whose payload is a
//                                    DigestPayload: the seq range, the chain hash before and at
//                                    its end, each file's SHA-256, and the previous digest's name,
//                                    SHA-256 and signature, so the digests form a chain of their own
//
// <first> and <last> are seq numbers padded to 20 digits: names sort in seq order and two
// instances exporting the same range write the same names. Files are written once: into a
// temporary file, then hard-linked to their name, which fails if the name exists (exclusive
// create, never a rename over an existing file); an existing file with the same bytes is the
// other instance's identical export, one with other bytes a refusal. Exports are serialized across
// instances by a transaction-scoped advisory lock (repo.lockExport), under which the directory's
// newest digest is read, so ranges never overlap. The directory is the export's only state: ship
// copies anywhere, but keep the newest digest in it (the next export chains onto it).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import type { Sealer } from '../crypto/seal.ts';
import type { Db } from '../db/handle.ts';
import { inTransaction } from '../db/transaction.ts';
import { AuditExportError, ConfigError } from '../errors.ts';
import * as repo from './audit.repository.ts';
import { canonicalJson, eventHash, exportedRow, GENESIS_HASH, type ChainedFields } from './canonical.ts';
import { signWithCurrentKey, writeCheckpoint, type Checkpoint } from './checkpoint.ts';

/** Explicit JWS type (RFC 8725 §3.11): a digest never passes for a token or a checkpoint. */
export const DIGEST_TYP = 'gatehouse-audit-digest+jws';

export interface DigestPayload {
  type: 'gatehouse-audit-digest';
  version: 1;
  first_seq: number;
  last_seq: number;
  /** prev_hash of event first_seq: the previous digest's head_hash, 64 zeros for seq 1. */
  prev_hash: string;
  /** hash of event last_seq: the chain head this digest vouches for. */
  head_hash: string;
  /** The event files, in seq order, with their SHA-256 (lowercase hex) and number of events. */
  files: { name: string; sha256: string; events: number }[];
  /** The digest before this one: SHA-256 of its file's bytes and its JWS signature. Null for seq 1. */
  previous_digest: { name: string; sha256: string; signature: string } | null;
  /** When the digest was signed (the database's clock). */
  time: string;
}

const pad = (n: number) => String(n).padStart(20, '0');
export const logFileName = (first: number, last: number) => `audit-${pad(first)}-${pad(last)}.jsonl`;
export const digestFileName = (first: number, last: number) => `audit-${pad(first)}-${pad(last)}.digest.jws`;
const DIGEST_NAME = /^audit-(\d{20})-(\d{20})\.digest\.jws$/;

export interface DigestFile {
  name: string;
  first: number;
  last: number;
}

/** The digest files in `dir`, by range. */
export async function listDigestFiles(dir: string): Promise<DigestFile[]> {
  const names = await fs.readdir(dir);
  return names
    .flatMap((name) => {
      const m = DIGEST_NAME.exec(name);
      return m ? [{ name, first: Number(m[1]), last: Number(m[2]) }] : [];
    })
    .sort((a, b) => a.first - b.first || a.last - b.last);
}

export function sha256Hex(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** The payload of a digest JWS, not verified (the exporter chains onto its own newest digest). */
export function decodeDigestPayload(jws: string): DigestPayload {
  const part = jws.split('.')[1];
  if (part === undefined) throw new Error('not a compact JWS');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as DigestPayload;
}

/** `kid` and `typ` of a digest JWS, not verified. */
export function digestHeader(jws: string): { kid?: string; alg?: string; typ?: string } {
  return decodeProtectedHeader(jws) as { kid?: string; alg?: string; typ?: string };
}

/**
 * Write `name` in `dir` once: into a temporary file, flushed, then hard-linked to its name (fails
 * if the name exists). If it exists with the same bytes, another instance wrote the same export
 * and that is fine; other bytes are refused, never overwritten.
 */
async function writeOnce(dir: string, name: string, fill: (write: (text: string) => Promise<void>) => Promise<void>): Promise<string> {
  const tmp = path.join(dir, `.${name}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const hash = crypto.createHash('sha256');
  const fh = await fs.open(tmp, 'wx', 0o444);
  try {
    try {
      await fill(async (text) => {
        const bytes = Buffer.from(text, 'utf8');
        hash.update(bytes);
        await fh.write(bytes);
      });
      await fh.sync();
    } finally {
      await fh.close();
    }
    const sha256 = hash.digest('hex');
    const final = path.join(dir, name);
    try {
      await fs.link(tmp, final);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (sha256Hex(await fs.readFile(final)) !== sha256)
        throw new AuditExportError(
          `${final} already exists with other content; it is never overwritten (run gatehouse audit verify --export)`,
        );
    }
    return sha256;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * At server start: GATEHOUSE_AUDIT_EXPORT_DIR must be an existing directory (a typo fails fast).
 * A directory that later stops accepting writes fails only the exports, never the checkpoints.
 */
export async function assertExportDir(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) throw new ConfigError(`GATEHOUSE_AUDIT_EXPORT_DIR: ${dir} is not an existing directory`);
  try {
    await fs.access(dir, fs.constants.W_OK);
  } catch {
    throw new ConfigError(`GATEHOUSE_AUDIT_EXPORT_DIR: ${dir} is not writable by this process`);
  }
}

export interface ExportResult {
  firstSeq: number;
  lastSeq: number;
  digest: string;
  files: string[];
  kid: string;
}

/**
 * Export the events after the directory's newest digest, up to `throughSeq` (a checkpointed
 * seq), with their digest. Null when they are already exported. Refuses (AuditExportError) to
 * export a chain that does not link onto the newest digest or does not match its own hashes: the
 * export vouches only for what verifies.
 */
export async function exportThrough(
  db: Db,
  sealer: Sealer,
  dir: string,
  throughSeq: number,
  pageSize = 1000,
): Promise<ExportResult | null> {
  return inTransaction(db, async (trx) => {
    await repo.lockExport(trx);
    let digests: DigestFile[];
    try {
      digests = await listDigestFiles(dir);
    } catch (err) {
      throw new AuditExportError(`cannot read the audit export directory ${dir}: ${(err as Error).message}`);
    }
    const newest = digests.reduce<DigestFile | undefined>((a, d) => (!a || d.last > a.last ? d : a), undefined);
    let previous: DigestPayload['previous_digest'] = null;
    let prevHash = GENESIS_HASH;
    let first = 1;
    if (newest) {
      const bytes = await fs.readFile(path.join(dir, newest.name));
      const jws = bytes.toString('utf8').trim();
      let payload: DigestPayload;
      try {
        payload = decodeDigestPayload(jws);
      } catch {
        throw new AuditExportError(`the newest digest ${newest.name} in ${dir} is not a digest JWS (run gatehouse audit verify --export)`);
      }
      previous = { name: newest.name, sha256: sha256Hex(bytes), signature: jws.split('.')[2]! };
      prevHash = payload.head_hash;
      first = payload.last_seq + 1;
    }
    if (first > throughSeq) return null;

    const logName = logFileName(first, throughSeq);
    let expected = first;
    let head = prevHash;
    const refuse = (why: string) =>
      new AuditExportError(`${why}; events ${first} to ${throughSeq} not exported (run gatehouse audit verify --export ${dir})`);
    const logSha = await writeOnce(dir, logName, async (write) => {
      for (;;) {
        const rows = await repo.eventsBetween(trx, expected - 1, throughSeq, pageSize);
        if (rows.length === 0) break;
        for (const row of rows) {
          const seq = Number(row.seq);
          const line = exportedRow(row);
          if (seq !== expected) throw refuse(`event ${expected} is missing from the database`);
          if (row.prev_hash !== head)
            throw refuse(
              `event ${seq} does not chain onto ${seq === first && newest ? `the last exported event (${newest.name})` : `event ${seq - 1}`}`,
            );
          if (eventHash(line as unknown as ChainedFields) !== row.hash) throw refuse(`event ${seq} does not match its hash`);
          await write(canonicalJson(line) + '\n');
          head = row.hash;
          expected++;
        }
      }
      if (expected !== throughSeq + 1) throw refuse(`event ${expected} is missing from the database`);
    });

    const payload: DigestPayload = {
      type: 'gatehouse-audit-digest',
      version: 1,
      first_seq: first,
      last_seq: throughSeq,
      prev_hash: prevHash,
      head_hash: head,
      files: [{ name: logName, sha256: logSha, events: throughSeq - first + 1 }],
      previous_digest: previous,
      time: (await repo.databaseNow(trx)).toISOString(),
    };
    const { jws, kid } = await signWithCurrentKey(trx, sealer, DIGEST_TYP, canonicalJson(payload));
    const digest = digestFileName(first, throughSeq);
    await writeOnce(dir, digest, (write) => write(jws + '\n'));
    await syncDir(dir);
    return { firstSeq: first, lastSeq: throughSeq, digest, files: [logName], kid };
  });
}

export interface CheckpointOutcome {
  checkpoint: Checkpoint | null;
  exported: ExportResult | null;
  /** The export failed; the checkpoint is recorded all the same and the next one exports these events. */
  exportError: Error | null;
}

/**
 * One checkpoint, periodic or `gatehouse audit checkpoint`: sign the chain head in the database,
 * then, with an export directory, export up to it. The checkpoint does not depend on the
 * directory: it is recorded (and catches a rewritten tail in the database) even when the export
 * fails, and the next export picks up every event since the last digest, so a failure leaves no gap.
 */
export async function checkpointAndExport(db: Db, sealer: Sealer, exportDir: string | null): Promise<CheckpointOutcome> {
  const checkpoint = await writeCheckpoint(db, sealer);
  if (!checkpoint || !exportDir) return { checkpoint, exported: null, exportError: null };
  try {
    return { checkpoint, exported: await exportThrough(db, sealer, exportDir, checkpoint.seq), exportError: null };
  } catch (err) {
    const error =
      err instanceof AuditExportError ? err : new AuditExportError(`audit export to ${exportDir} failed: ${(err as Error).message}`);
    return { checkpoint, exported: null, exportError: error };
  }
}

// `gatehouse audit verify --export DIR`: does the export (./export.ts) hold together, and does the
// database still say what was exported? Read-only, a page at a time. What it catches:
//  - a digest forged or altered:          its signature does not verify with its kid's public key;
//  - a digest replaced or reordered:      the next digest's previous_digest names other bytes;
//  - an export file altered or removed:   its SHA-256 differs from the one its digest signed;
//  - a digest (and its events) removed:   a seq range no digest covers, named with its neighbours;
//  - the export falling behind:           a checkpoint in the database beyond the last digest;
//  - the database rewritten, even with the triggers off, hashes recomputed and the checkpoints
//    deleted: the first exported event the database no longer holds as exported is named.
// Public keys come from signing_key (every state: retired, erased and revoked keys keep their
// public part, so old digests verify after rotation), or, with --jwks, from a JWKS kept outside
// the database (then a key in signing_key that differs from it is reported too).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { compactVerify, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Db } from '../db/handle.ts';
import { AuditExportError } from '../errors.ts';
import * as repo from './audit.repository.ts';
import { canonicalJson, eventHash, exportedRow, GENESIS_HASH, type ChainedFields } from './canonical.ts';
import { DIGEST_TYP, digestHeader, listDigestFiles, sha256Hex, type DigestFile, type DigestPayload } from './export.ts';

export interface ExportFinding {
  /** digest: a digest file; file: an event file; database: the database disagrees; gap: no digest covers a range. */
  kind: 'digest' | 'file' | 'database' | 'gap';
  message: string;
  /** The event it concerns (database), or the first seq of the range (gap). */
  seq?: number;
  through?: number;
  file?: string;
  /** A gap's period: when the digest before it and the one after it were signed. */
  since?: string;
  until?: string;
}

export interface ExportVerifyResult {
  ok: boolean;
  digests: number;
  /** Events the export covers without a gap from seq 1 (null: none). */
  exportedThrough: number | null;
  /** Events in the database after the last digest: not yet exported (normal until the next checkpoint). */
  notYetExported: { from: number; through: number } | null;
  findings: ExportFinding[];
  /** The first event of a database finding. */
  firstBadSeq: number | null;
}

type Key = { alg: string; jwk: Record<string, unknown> };

const sameKey = (a: Record<string, unknown>, b: Record<string, unknown>) => ['kty', 'crv', 'x', 'y', 'n', 'e'].every((k) => a[k] === b[k]);

/** Lines of a file, streamed. */
async function* lines(file: string): AsyncGenerator<string> {
  const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of rl) if (line !== '') yield line;
}

async function fileSha256(file: string): Promise<string | null> {
  const hash = crypto.createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return hash.digest('hex');
}

const CONTENT_EXCLUDES = new Set(['hash', 'prev_hash']);

export async function verifyExport(db: Db, dir: string, opts: { pageSize?: number; jwks?: JWK[] } = {}): Promise<ExportVerifyResult> {
  const pageSize = opts.pageSize ?? 1000;
  const findings: ExportFinding[] = [];
  let databaseFinding: ExportFinding | null = null;
  const dbFinding = (f: ExportFinding) => {
    if (!databaseFinding) findings.push((databaseFinding = f));
  };

  let digests: DigestFile[];
  try {
    digests = await listDigestFiles(dir);
  } catch (err) {
    throw new AuditExportError(`cannot read the audit export directory ${dir}: ${(err as Error).message}`);
  }

  // Keys: the --jwks file when given (kept outside the database), else signing_key by kid.
  const trusted = new Map<string, Key>();
  for (const k of opts.jwks ?? []) if (k.kid && k.alg) trusted.set(k.kid, { alg: k.alg, jwk: k as Record<string, unknown> });
  const imported = new Map<string, Promise<CryptoKey | Uint8Array>>();
  const reportedKeys = new Set<string>();
  const keyFor = async (kid: string): Promise<Key | undefined> => {
    const stored = (await repo.publicKeys(db, [kid])).get(kid);
    if (!opts.jwks) return stored;
    const fromFile = trusted.get(kid);
    if (fromFile && stored && !sameKey(fromFile.jwk, stored.jwk) && !reportedKeys.has(kid)) {
      reportedKeys.add(kid);
      findings.push({
        kind: 'database',
        message: `signing key ${kid} in the database differs from the one in the --jwks file: it was replaced`,
      });
    }
    return fromFile;
  };

  /** The digest's payload if its signature verifies, else a finding and null. */
  const verifyDigest = async (d: DigestFile, jws: string): Promise<DigestPayload | null> => {
    const bad = (message: string) => {
      findings.push({ kind: 'digest', file: d.name, message: `digest ${d.name}: ${message}` });
      return null;
    };
    let header: ReturnType<typeof digestHeader>;
    try {
      header = digestHeader(jws);
    } catch {
      return bad('not a compact JWS');
    }
    if (header.typ !== DIGEST_TYP || !header.kid) return bad(`its JWS header is not a digest header (typ ${DIGEST_TYP} with a kid)`);
    const key = await keyFor(header.kid);
    if (!key) return bad(`its signing key ${header.kid} is unknown (not in signing_key${opts.jwks ? ' nor in the --jwks file' : ''})`);
    let payload: DigestPayload;
    try {
      if (!imported.has(header.kid)) imported.set(header.kid, importJWK(key.jwk, key.alg));
      const verified = await compactVerify(jws, await imported.get(header.kid)!, { algorithms: [key.alg] });
      payload = JSON.parse(new TextDecoder().decode(verified.payload)) as DigestPayload;
    } catch {
      return bad(`its signature does not verify with key ${header.kid}: the digest was altered or forged`);
    }
    if (payload.type !== 'gatehouse-audit-digest' || payload.first_seq !== d.first || payload.last_seq !== d.last)
      return bad(`its signed range ${payload.first_seq}–${payload.last_seq} is not the one its name says: the file was renamed`);
    return payload;
  };

  /** Compare an intact event file with its digest's claims and with the database. */
  const checkEvents = async (
    d: DigestFile,
    payload: DigestPayload,
    file: string,
    from: number,
    prevHash: string,
  ): Promise<{ next: number; prev: string }> => {
    let expected = from;
    let prev = prevHash;
    let dbPage: repo.AuditEventRow[] = [];
    let dbIndex = 0;
    let dbAfter = from - 1;
    let dbEnded = false;
    const nextDbRow = async (): Promise<repo.AuditEventRow | undefined> => {
      if (dbIndex >= dbPage.length && !dbEnded) {
        dbPage = await repo.eventsBetween(db, dbAfter, payload.last_seq, pageSize);
        dbIndex = 0;
        if (dbPage.length === 0) dbEnded = true;
        else dbAfter = Number(dbPage[dbPage.length - 1]!.seq);
      }
      return dbPage[dbIndex++];
    };
    let pending: repo.AuditEventRow | undefined;
    let comparing = databaseFinding === null;
    for await (const text of lines(path.join(dir, file))) {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        findings.push({ kind: 'file', file, message: `${file}: line for event ${expected} is not JSON, yet digest ${d.name} signed it` });
        return { next: expected, prev };
      }
      const seq = Number(line.seq);
      if (seq !== expected || line.prev_hash !== prev || eventHash(line as unknown as ChainedFields) !== line.hash) {
        findings.push({
          kind: 'file',
          file,
          message: `${file}: event ${expected} does not chain (seq, prev_hash or hash), yet digest ${d.name} signed it`,
        });
        return { next: expected, prev };
      }
      prev = line.hash as string;
      expected++;
      if (!comparing) continue;
      const row = pending ?? (await nextDbRow());
      pending = undefined;
      if (!row || Number(row.seq) > seq) {
        pending = row;
        dbFinding({
          kind: 'database',
          seq,
          file,
          message: `event ${seq} was deleted from the database: ${file} holds it, signed by digest ${d.name}`,
        });
        comparing = false;
        continue;
      }
      const stored = exportedRow(row);
      if (canonicalJson(stored) !== canonicalJson(line)) {
        const changed = [...new Set([...Object.keys(stored), ...Object.keys(line)])]
          .filter((k) => !CONTENT_EXCLUDES.has(k) && canonicalJson(stored[k] ?? null) !== canonicalJson(line[k] ?? null))
          .sort();
        dbFinding({
          kind: 'database',
          seq,
          file,
          message: changed.length
            ? `event ${seq} was changed in the database (${changed.join(', ')} ${changed.length === 1 ? 'differs' : 'differ'} from ${file}, signed by digest ${d.name})`
            : `event ${seq} was rewritten in the database: its columns match ${file} but its hashes do not (the chain before it was rewritten)`,
        });
        comparing = false;
      }
    }
    return { next: expected, prev };
  };

  let expectedFirst = 1;
  let prevDigest: { name: string; sha256: string; signature: string; payload: DigestPayload | null } | null = null;
  for (const d of digests) {
    const bytes = fs.readFileSync(path.join(dir, d.name));
    const jws = bytes.toString('utf8').trim();
    const payload = await verifyDigest(d, jws);
    const here = { name: d.name, sha256: sha256Hex(bytes), signature: jws.split('.')[2] ?? '', payload };

    if (d.first > expectedFirst) {
      const named = payload?.previous_digest ? `; ${d.name} names ${payload.previous_digest.name} as the digest before it` : '';
      findings.push({
        kind: 'gap',
        seq: expectedFirst,
        through: d.first - 1,
        message: `events ${expectedFirst} to ${d.first - 1} have no digest (between ${prevDigest ? prevDigest.name : 'the start of the log'} and ${d.name}${named})`,
        // The period without a digest: from the last digest before the gap to the first after it.
        ...(prevDigest?.payload ? { since: prevDigest.payload.time } : {}),
        ...(payload ? { until: payload.time } : {}),
      });
    } else if (d.first < expectedFirst) {
      findings.push({
        kind: 'digest',
        file: d.name,
        message: `digest ${d.name} overlaps ${prevDigest?.name}: events ${d.first} to ${Math.min(d.last, expectedFirst - 1)} are covered twice`,
      });
    } else if (payload) {
      // Contiguous: the digest must chain onto the one before it.
      const link = payload.previous_digest;
      const want = prevDigest ? { name: prevDigest.name, sha256: prevDigest.sha256, signature: prevDigest.signature } : null;
      if (canonicalJson(link) !== canonicalJson(want))
        findings.push({
          kind: 'digest',
          file: d.name,
          message: want
            ? `digest ${d.name} does not chain onto ${want.name}: it signed ${link ? `${link.name} with SHA-256 ${link.sha256}` : 'no previous digest'}, the file's SHA-256 is ${want.sha256}`
            : `digest ${d.name} names ${link?.name} as the digest before it, but it is the first one`,
        });
      const wantPrevHash = prevDigest ? prevDigest.payload?.head_hash : GENESIS_HASH;
      if (wantPrevHash !== undefined && payload.prev_hash !== wantPrevHash)
        findings.push({
          kind: 'digest',
          file: d.name,
          message: `digest ${d.name}: its prev_hash is not the head_hash of ${prevDigest?.name}`,
        });
    }

    if (payload) {
      let prevHash = payload.prev_hash;
      let next = payload.first_seq;
      let intact = true;
      for (const f of payload.files) {
        intact = false;
        const file = path.basename(f.name);
        const sha = await fileSha256(path.join(dir, file));
        if (sha === null) {
          findings.push({ kind: 'file', file, message: `${file} is missing: digest ${d.name} signed it (events ${d.first} to ${d.last})` });
          break;
        }
        if (sha !== f.sha256) {
          findings.push({
            kind: 'file',
            file,
            message: `${file} was altered: its SHA-256 is ${sha}, digest ${d.name} signed ${f.sha256}`,
          });
          break;
        }
        const before = findings.length;
        ({ next, prev: prevHash } = await checkEvents(d, payload, file, next, prevHash));
        intact = !findings.slice(before).some((x) => x.kind === 'file');
        if (!intact) break;
      }
      if (intact && (next !== payload.last_seq + 1 || prevHash !== payload.head_hash))
        findings.push({
          kind: 'digest',
          file: d.name,
          message: `digest ${d.name}: its files end at event ${next - 1} with another hash than the head_hash it signed for event ${d.last}`,
        });
    }
    expectedFirst = Math.max(expectedFirst, d.last + 1);
    prevDigest = here;
  }

  const exportedThrough = expectedFirst > 1 ? expectedFirst - 1 : null;
  const newestCheckpoint = await repo.newestCheckpoint(db);
  if (newestCheckpoint && Number(newestCheckpoint.seq) > (exportedThrough ?? 0)) {
    const from = (exportedThrough ?? 0) + 1;
    findings.push({
      kind: 'gap',
      seq: from,
      through: Number(newestCheckpoint.seq),
      ...(prevDigest?.payload ? { since: prevDigest.payload.time } : {}),
      until: new Date(newestCheckpoint.time).toISOString(),
      message:
        `events ${from} to ${newestCheckpoint.seq} have no digest, though a checkpoint signed at ${new Date(newestCheckpoint.time).toISOString()} covers them: ` +
        `the export fell behind (is the directory writable?) or its newest digests were removed`,
    });
  }
  const head = await repo.newestEvent(db);
  const headSeq = head ? Number(head.seq) : 0;
  const notYetExported = headSeq > (exportedThrough ?? 0) ? { from: (exportedThrough ?? 0) + 1, through: headSeq } : null;
  const dbf = findings.find((f) => f.kind === 'database' && f.seq !== undefined);
  return {
    ok: findings.length === 0,
    digests: digests.length,
    exportedThrough,
    notYetExported,
    findings,
    firstBadSeq: dbf?.seq ?? null,
  };
}

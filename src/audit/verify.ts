// `gatehouse audit verify`: recompute the chain from seq 1 and check every checkpoint, reading
// a page at a time so that a log of millions of rows never sits in memory. Read-only.
//
// What it catches, and how:
//  - a row altered in place:            its recomputed hash differs from the stored one;
//  - a row altered, hashes recomputed:  a later checkpoint's signed hash differs from the chain;
//  - a row deleted from the middle:     a gap in seq (or a prev_hash that does not link);
//  - the newest rows deleted:           the newest checkpoint names a seq beyond the last row;
//  - a checkpoint forged or altered:    its signature does not verify with its kid's public key.
// What it cannot catch alone: someone who can write the database deleting the newest rows *and*
// the checkpoints after them, or replacing signing_key. Against that, keep copies of checkpoints
// (or of this command's output) outside the database.
import { importJWK, type CryptoKey } from 'jose';
import * as repo from './audit.repository.ts';
import { eventHash, GENESIS_HASH } from './canonical.ts';
import { checkCheckpointSignature } from './checkpoint.ts';
import type { Db } from '../db/handle.ts';

export type VerifyResult =
  | {
      ok: true;
      events: number;
      checkpoints: number;
      lastCheckpointSeq: number | null;
      /** Set when only the events after this signed checkpoint were walked (verifyAuditSinceCheckpoint). */
      fromCheckpointSeq?: number;
    }
  | { ok: false; events: number; firstBadSeq: number; reason: string };

/** Rows in order, a page at a time. */
async function* paged<T extends { seq: string }>(fetch: (afterSeq: number) => Promise<T[]>, from = 0): AsyncGenerator<T> {
  let after = from;
  for (;;) {
    const page = await fetch(after);
    yield* page;
    if (page.length === 0) return;
    after = Number(page[page.length - 1]!.seq);
  }
}

export async function verifyAudit(db: Db, opts: { pageSize?: number } = {}): Promise<VerifyResult> {
  const pageSize = opts.pageSize ?? 1000;
  const fail = async (firstBadSeq: number, reason: string): Promise<VerifyResult> => ({
    ok: false,
    events: await repo.countEvents(db),
    firstBadSeq,
    reason,
  });

  const keys = new Map<string, Promise<CryptoKey | Uint8Array>>();
  const importKey = (kid: string, alg: string, jwk: Record<string, unknown>) => {
    if (!keys.has(kid)) keys.set(kid, importJWK(jwk, alg));
    return keys.get(kid)!;
  };
  // Checkpoints come in pages too, each page with the public keys it names.
  const checkpoints = paged(async (after) => {
    const rows = await repo.checkpointsAfter(db, after, pageSize);
    const pub = await repo.publicKeys(db, [...new Set(rows.map((r) => r.kid))]);
    return rows.map((row) => ({ seq: row.seq, row, key: pub.get(row.kid) }));
  });
  let cp = (await checkpoints.next()).value;
  let checkpointCount = 0;
  let lastGoodCheckpoint = 0;

  const checkSignature = async (c: NonNullable<typeof cp>): Promise<string | null> => {
    const problem = await checkCheckpointSignature(c.row, c.key, importKey);
    return problem && `the checkpoint at event ${c.row.seq} is not genuine: ${problem}`;
  };

  let expected = 1;
  let prev = GENESIS_HASH;
  for await (const row of paged((after) => repo.eventsAfter(db, after, pageSize))) {
    const seq = Number(row.seq);
    if (seq !== expected) return fail(expected, `event ${expected} is missing: the next stored event is ${seq}`);
    if (row.prev_hash !== prev) return fail(seq, `event ${seq}'s prev_hash does not link to event ${seq - 1}`);
    const fields = { ...row, seq, time: new Date(row.time).toISOString() };
    if (eventHash(fields) !== row.hash) return fail(seq, `event ${seq} does not match its hash: it was altered after it was written`);

    for (; cp && Number(cp.row.seq) <= seq; cp = (await checkpoints.next()).value) {
      const cpSeq = Number(cp.row.seq);
      const problem = await checkSignature(cp);
      if (problem) return fail(cpSeq, problem);
      // cpSeq < seq cannot happen while seq has no gaps; it equals seq here.
      if (cp.row.hash !== row.hash) {
        return fail(
          lastGoodCheckpoint + 1,
          `the chain up to event ${cpSeq} differs from its signed checkpoint: an event from ${lastGoodCheckpoint + 1} to ${cpSeq} was rewritten and the hashes after it recomputed`,
        );
      }
      lastGoodCheckpoint = cpSeq;
      checkpointCount++;
    }
    prev = row.hash;
    expected++;
  }

  if (cp) {
    const problem = await checkSignature(cp);
    if (problem) return fail(Number(cp.row.seq), problem);
    const missing = expected === Number(cp.row.seq) ? `event ${expected} is missing` : `events ${expected} to ${cp.row.seq} are missing`;
    return fail(
      expected,
      `${missing}: a checkpoint signed at ${new Date(cp.row.time).toISOString()} covers event ${cp.row.seq}, but the log ends at ${expected - 1}`,
    );
  }
  return { ok: true, events: expected - 1, checkpoints: checkpointCount, lastCheckpointSeq: lastGoodCheckpoint || null };
}

/**
 * What the admin audit page shows on every view (issue 7 §8): the newest signed checkpoint and
 * the events after it, instead of the whole chain. The checkpoint's signature vouches for every
 * event up to it (rewriting one means recomputing the hashes up to the signed one, which then
 * differs); a full walk stays `gatehouse audit verify`. Without a checkpoint, the whole chain.
 */
export async function verifyAuditSinceCheckpoint(db: Db, opts: { pageSize?: number } = {}): Promise<VerifyResult> {
  const pageSize = opts.pageSize ?? 1000;
  const cp = await repo.newestCheckpoint(db);
  if (!cp) return verifyAudit(db, opts);
  const cpSeq = Number(cp.seq);
  const fail = (firstBadSeq: number, reason: string): VerifyResult => ({ ok: false, events: expected - 1, firstBadSeq, reason });
  let expected = cpSeq;

  const key = (await repo.publicKeys(db, [cp.kid])).get(cp.kid);
  const problem = await checkCheckpointSignature(cp, key, (_kid, alg, jwk) => importJWK(jwk, alg));
  if (problem) return fail(cpSeq, `the checkpoint at event ${cpSeq} is not genuine: ${problem}`);

  const [anchor] = await repo.eventsAfter(db, cpSeq - 1, 1);
  if (!anchor || Number(anchor.seq) !== cpSeq)
    return fail(cpSeq, `event ${cpSeq} is missing: a checkpoint signed at ${new Date(cp.time).toISOString()} covers it`);
  if (eventHash({ ...anchor, seq: cpSeq, time: new Date(anchor.time).toISOString() }) !== anchor.hash)
    return fail(cpSeq, `event ${cpSeq} does not match its hash: it was altered after it was written`);
  if (anchor.hash !== cp.hash) return fail(cpSeq, `the chain up to event ${cpSeq} differs from its signed checkpoint`);

  let prev = anchor.hash;
  expected = cpSeq + 1;
  for await (const row of paged((after) => repo.eventsAfter(db, after, pageSize), cpSeq)) {
    const seq = Number(row.seq);
    if (seq !== expected) return fail(expected, `event ${expected} is missing: the next stored event is ${seq}`);
    if (row.prev_hash !== prev) return fail(seq, `event ${seq}'s prev_hash does not link to event ${seq - 1}`);
    if (eventHash({ ...row, seq, time: new Date(row.time).toISOString() }) !== row.hash)
      return fail(seq, `event ${seq} does not match its hash: it was altered after it was written`);
    prev = row.hash;
    expected++;
  }
  return { ok: true, events: expected - 1, checkpoints: 1, lastCheckpointSeq: cpSeq, fromCheckpointSeq: cpSeq };
}

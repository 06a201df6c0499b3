// Signed checkpoints over the audit chain (docs/architecture.md, "Audit log"). The chain alone shows an
// altered or missing row in the middle; it cannot show that the newest rows were deleted, nor
// that someone rewrote a row and recomputed every hash after it. A checkpoint — {seq, hash,
// time} of the chain head, signed with the current signing key — can: verification finds its
// seq beyond the last row, or its hash different from the row's.
import { CompactSign, compactVerify, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Sealer } from '../crypto/seal.ts';
import { GatehouseError } from '../errors.ts';
import { loadKeySet } from '../keys/keys.service.ts';
import * as repo from './audit.repository.ts';
import { canonicalJson } from './canonical.ts';
import type { Db } from '../db/handle.ts';

/**
 * Explicit JWS type (RFC 8725 §3.11): the key that signs checkpoints also signs access tokens,
 * and neither must ever pass for the other.
 */
export const CHECKPOINT_TYP = 'gatehouse-audit-checkpoint+jws';

// Any current key will do; ES256 first, the access-token default: small and fast.
const ALG_PREFERENCE = ['ES256', 'EdDSA', 'PS256', 'RS256'];

export interface Checkpoint {
  seq: number;
  hash: string;
  /** When the checkpoint was signed (the database's clock). */
  time: string;
  kid: string;
  jws: string;
}

function toCheckpoint(row: repo.AuditCheckpointRow): Checkpoint {
  return { seq: Number(row.seq), hash: row.hash, time: new Date(row.time).toISOString(), kid: row.kid, jws: row.jws };
}

/**
 * A compact JWS of `payload` with a current signing key (kid and `typ` in the protected header):
 * checkpoints and export digests (./export.ts) alike.
 */
export async function signWithCurrentKey(db: Db, sealer: Sealer, typ: string, payload: string): Promise<{ jws: string; kid: string }> {
  const { signing } = await loadKeySet(db, sealer);
  const jwk = ALG_PREFERENCE.map((alg) => signing.find((k) => k.alg === alg)).find((k): k is JWK => k !== undefined);
  if (!jwk?.kid || !jwk.alg)
    throw new GatehouseError('UNAVAILABLE', 'no current signing key to sign audit checkpoints with (gatehouse keys list creates them)');
  const jws = await new CompactSign(new TextEncoder().encode(payload))
    .setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, typ })
    .sign(await importJWK(jwk, jwk.alg));
  return { jws, kid: jwk.kid };
}

/**
 * Sign the chain head now. Returns null for an empty log, and the existing checkpoint when the
 * head already has one (several instances checkpointing at once write one row).
 */
export async function writeCheckpoint(db: Db, sealer: Sealer): Promise<Checkpoint | null> {
  const head = await repo.newestEvent(db);
  if (!head) return null;
  const seq = Number(head.seq);
  const existing = await repo.checkpointAt(db, seq);
  if (existing) return toCheckpoint(existing);

  const time = await repo.databaseNow(db);
  const payload = canonicalJson({ seq, hash: head.hash, time: time.toISOString() });
  const { jws, kid } = await signWithCurrentKey(db, sealer, CHECKPOINT_TYP, payload);
  const row = { seq, hash: head.hash, time, kid, jws };
  if (await repo.insertCheckpoint(db, row)) return { ...row, time: time.toISOString() };
  return toCheckpoint((await repo.checkpointAt(db, seq))!);
}

/**
 * Checks a stored checkpoint against the public key of its kid: the signature, the type, and
 * that the signed payload is what the row's columns say. Returns the problem, or null.
 */
export async function checkCheckpointSignature(
  row: repo.AuditCheckpointRow,
  key: { alg: string; jwk: Record<string, unknown> } | undefined,
  importKey: (kid: string, alg: string, jwk: Record<string, unknown>) => Promise<CryptoKey | Uint8Array>,
): Promise<string | null> {
  if (!key) return `its signing key ${row.kid} is not in signing_key`;
  let payload: unknown;
  try {
    const verified = await compactVerify(row.jws, await importKey(row.kid, key.alg, key.jwk), { algorithms: [key.alg] });
    if (verified.protectedHeader.typ !== CHECKPOINT_TYP || verified.protectedHeader.kid !== row.kid)
      return 'its JWS header is not a checkpoint header for its kid';
    payload = JSON.parse(new TextDecoder().decode(verified.payload));
  } catch {
    return `its signature does not verify with key ${row.kid}`;
  }
  const expected = canonicalJson({ seq: Number(row.seq), hash: row.hash, time: new Date(row.time).toISOString() });
  if (canonicalJson(payload) !== expected) return 'its signed {seq, hash, time} differs from the stored columns';
  return null;
}

/**
 * Checkpoint the chain every `intervalMs` (the server's wiring calls this once). Runs never
 * overlap; an error goes to `onError` and the next tick tries again. `run` replaces the plain
 * checkpoint (the server passes checkpoint + export, src/audit/export.ts).
 */
export function scheduleCheckpoints(opts: {
  db: Db;
  sealer: Sealer;
  intervalMs: number;
  run?: () => Promise<unknown>;
  onError?: (err: unknown) => void;
}): {
  stop(): Promise<void>;
} {
  let running: Promise<unknown> | null = null;
  const run = opts.run ?? (() => writeCheckpoint(opts.db, opts.sealer));
  const timer = setInterval(() => {
    running ??= run()
      .catch((err) => opts.onError?.(err))
      .finally(() => (running = null));
  }, opts.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

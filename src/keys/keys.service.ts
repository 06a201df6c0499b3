// Signing keys live in the database: public JWK in clear, private JWK sealed under the master key,
// state next → current → retired (docs/architecture.md, "Signing keys"), or revoked when
// compromised (./revoke.ts). The rules that keep every verifier working through a rotation:
//  - a key is published as `next` before it signs anything, for longer than verifiers may cache
//    the JWKS (GATEHOUSE_JWKS_MAX_AGE), so a token with its kid never meets a stale cache;
//  - a retired key stays published until every token it signed has expired.
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Sealer } from '../crypto/seal.ts';
import { bumpVersion } from '../db/change-feed.ts';
import { inTransaction } from '../db/transaction.ts';
import type { Db } from '../db/handle.ts';
import type { SigningKeyRow } from '../db/schema.ts';
import { GatehouseError, SealError } from '../errors.ts';
import * as repo from './keys.repository.ts';

export type SigningAlg = 'ES256' | 'EdDSA' | 'RS256' | 'PS256';

export interface KeyPolicy {
  /** Algorithms to keep a current and a next key for: the access-token one and RS256 for ID tokens. */
  algs: SigningAlg[];
  /** How long verifiers may cache the JWKS; a next key must be published at least this long. */
  jwksMaxAgeSeconds: number;
  /** The longest lifetime of anything signed (ID tokens: 1 h), plus clock skew. */
  maxSignedLifetimeSeconds: number;
}

export interface KeySet {
  /** Private JWKs of the current keys: the only keys that sign. */
  signing: JWK[];
  /** Public JWKs of next, current and still-published retired keys: the JWKS. */
  published: JWK[];
  /** kid of the current key per algorithm. */
  currentKid: Partial<Record<SigningAlg, string>>;
}

export function sealContext(kid: string): string {
  return `signing_key:${kid}`;
}

export async function newKey(alg: SigningAlg, sealer: Sealer) {
  const options =
    alg === 'EdDSA'
      ? { crv: 'Ed25519', extractable: true }
      : alg.startsWith('RS') || alg.startsWith('PS')
        ? { modulusLength: 2048, extractable: true }
        : { extractable: true };
  const { privateKey, publicKey } = await generateKeyPair(alg, options);
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub); // RFC 7638: a kid derived from the key itself
  const priv = await exportJWK(privateKey);
  const meta = { kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    public_jwk: JSON.stringify({ ...pub, ...meta }),
    private_jwk_sealed: sealer.seal(JSON.stringify({ ...priv, ...meta }), sealContext(kid)),
  };
}

/** First start: make sure every algorithm has a current and a next key. Safe to race. */
export async function ensureKeys(db: Db, sealer: Sealer, policy: KeyPolicy, now = new Date()): Promise<boolean> {
  return inTransaction(db, async (trx) => {
    await repo.lockKeys(trx);
    let changed = false;
    for (const alg of policy.algs) {
      if (!(await repo.keyInState(trx, alg, 'current'))) {
        await repo.insertKey(trx, { ...(await newKey(alg, sealer)), state: 'current', activated_at: now });
        changed = true;
      }
      if (!(await repo.keyInState(trx, alg, 'next'))) {
        await repo.insertKey(trx, { ...(await newKey(alg, sealer)), state: 'next' });
        changed = true;
      }
    }
    if (changed) await bumpVersion(trx, 'keys');
    return changed;
  });
}

export interface RotationResult {
  alg: string;
  retired: string;
  current: string;
  next: string;
}

/**
 * Promote each algorithm's next key to current, retire the current one, publish a new next.
 * Refused while the next key is younger than the JWKS cache lifetime, unless forced (a
 * compromised key): then verifiers with a cached JWKS refetch on the unknown kid.
 */
export async function rotateKeys(
  db: Db,
  sealer: Sealer,
  policy: KeyPolicy,
  opts: { force?: boolean; now?: Date } = {},
): Promise<RotationResult[]> {
  const now = opts.now ?? new Date();
  await ensureKeys(db, sealer, policy, now);
  return inTransaction(db, async (trx) => {
    await repo.lockKeys(trx);
    const results: RotationResult[] = [];
    for (const alg of policy.algs) {
      const current = (await repo.keyInState(trx, alg, 'current'))!;
      const next = (await repo.keyInState(trx, alg, 'next'))!;
      const publishedFor = (now.getTime() - new Date(next.created_at).getTime()) / 1000;
      if (!opts.force && publishedFor < policy.jwksMaxAgeSeconds) {
        const wait = Math.ceil(policy.jwksMaxAgeSeconds - publishedFor);
        throw new GatehouseError(
          'KEY_ROTATION_TOO_SOON',
          `the next ${alg} key has been published for ${Math.floor(publishedFor)} s, less than the JWKS cache lifetime (${policy.jwksMaxAgeSeconds} s); ` +
            `verifiers may not know it yet. Rotate again in ${wait} s, or force it if the current key is compromised.`,
        );
      }
      const publishUntil = new Date(now.getTime() + policy.maxSignedLifetimeSeconds * 1000);
      await repo.retireKey(trx, current.kid, now, publishUntil);
      await repo.activateKey(trx, next.kid, now);
      const fresh = await newKey(alg, sealer);
      await repo.insertKey(trx, { ...fresh, state: 'next' });
      results.push({ alg, retired: current.kid, current: next.kid, next: fresh.kid });
    }
    await bumpVersion(trx, 'keys');
    return results;
  });
}

/** Automatic rotation: rotate when the current key is older than the interval. */
export async function rotateIfDue(
  db: Db,
  sealer: Sealer,
  policy: KeyPolicy,
  intervalSeconds: number,
  now = new Date(),
): Promise<RotationResult[]> {
  if (intervalSeconds <= 0) return [];
  const keys = await repo.allKeys(db);
  const due = keys.some(
    (k) => k.state === 'current' && k.activated_at && now.getTime() - new Date(k.activated_at).getTime() >= intervalSeconds * 1000,
  );
  const nextReady = keys
    .filter((k) => k.state === 'next')
    .every((k) => now.getTime() - new Date(k.created_at).getTime() >= policy.jwksMaxAgeSeconds * 1000);
  if (!due || !nextReady) return [];
  return rotateKeys(db, sealer, policy, { now });
}

function published(row: SigningKeyRow, now: Date): boolean {
  if (row.state === 'revoked') return false; // withdrawn as compromised: never again, whatever its dates
  return row.state !== 'retired' || (row.publish_until !== null && new Date(row.publish_until) > now);
}

export async function loadKeySet(db: Db, sealer: Sealer, now = new Date()): Promise<KeySet> {
  const rows = await repo.allKeys(db);
  const set: KeySet = { signing: [], published: [], currentKid: {} };
  // Current first, then next, then retired: a verifier scanning the set finds the likely key first.
  const order = { current: 0, next: 1, retired: 2, revoked: 3 } as const;
  for (const row of [...rows].sort((a, b) => order[a.state] - order[b.state])) {
    if (published(row, now)) set.published.push(row.public_jwk as JWK);
    if (row.state === 'current') {
      set.signing.push(JSON.parse(sealer.open(row.private_jwk_sealed, sealContext(row.kid)).toString('utf8')) as JWK);
      set.currentKid[row.alg as SigningAlg] = row.kid;
    }
  }
  return set;
}

export interface KeyInfo {
  kid: string;
  alg: string;
  state: string;
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
  published_until: string | null;
  revoked_at: string | null;
}

export async function listKeys(db: Db): Promise<KeyInfo[]> {
  const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());
  return (await repo.allKeys(db)).map((k) => ({
    kid: k.kid,
    alg: k.alg,
    state: k.state,
    created_at: iso(k.created_at)!,
    activated_at: iso(k.activated_at),
    retired_at: iso(k.retired_at),
    published_until: iso(k.publish_until),
    revoked_at: iso(k.revoked_at),
  }));
}

export { eraseExpiredKeys } from './keys.repository.ts';

/**
 * Refuse to run with a master key that does not open what is stored: otherwise a wrong key
 * would seal new keys that no instance with the right key can read.
 */
export async function assertMasterKeyOpens(db: Db, sealer: Sealer): Promise<void> {
  const row = await repo.anySealedKey(db);
  if (!row) return;
  try {
    sealer.open(row.private_jwk_sealed, sealContext(row.kid));
  } catch {
    throw new SealError(
      'the master key does not open the stored signing keys: wrong master key (GATEHOUSE_MASTER_KEY, GATEHOUSE_MASTER_KEY_FILE or <data dir>/master.key)',
    );
  }
}

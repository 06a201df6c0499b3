// Withdrawing a compromised signing key (issue 7 point 4). Rotation keeps every verifier working;
// revocation does the opposite on purpose: every token the key signed must stop verifying, now.
//  - The key leaves the JWKS in the same transaction (the change feed tells every instance), and
//    its private part is erased so no instance can load it to sign again.
//  - A revoked current or next key is replaced by a freshly generated one, never by the stored
//    next key promoted: whoever read the key store has read that one too. `all` replaces every
//    key of the algorithm (current, next and still-published retired) for that reason.
//  - A new current key signs before verifiers have seen it; verifiers refetch the JWKS on an
//    unknown kid (gatehouse/verify does), which is the price of withdrawing a key at once.
import { bumpVersion } from '../db/change-feed.ts';
import { inTransaction } from '../db/transaction.ts';
import type { Db } from '../db/handle.ts';
import type { Sealer } from '../crypto/seal.ts';
import { GatehouseError } from '../errors.ts';
import * as repo from './keys.repository.ts';
import { newKey, type KeyPolicy, type SigningAlg } from './keys.service.ts';

export interface RevocationResult {
  alg: string;
  /** Every kid withdrawn, the one named first. */
  revoked: string[];
  /** Freshly generated replacements: the new current and/or next kid of the algorithm. */
  current: string;
  next: string;
}

const KID_RE = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Revoke `kid` (with `all`, every key of its algorithm). Composes into the caller's transaction,
 * so the change and its `key.revoke` audit event commit together.
 */
export async function revokeKey(
  db: Db,
  sealer: Sealer,
  policy: KeyPolicy,
  opts: { kid: string; all?: boolean; now?: Date },
): Promise<RevocationResult> {
  const now = opts.now ?? new Date();
  if (typeof opts.kid !== 'string' || !KID_RE.test(opts.kid)) {
    throw new GatehouseError('VALIDATION', 'a key ID is letters, digits, "-" and "_" (see gatehouse keys list)', { field: 'kid' });
  }
  return inTransaction(db, async (trx) => {
    await repo.lockKeys(trx);
    const key = await repo.keyByKid(trx, opts.kid);
    if (!key) throw new GatehouseError('NOT_FOUND', `no signing key with ID ${opts.kid}`, { field: 'kid' });
    if (key.state === 'revoked') throw new GatehouseError('CONFLICT', `signing key ${opts.kid} is already revoked`, { field: 'kid' });

    const targets = opts.all ? await repo.unrevokedKeys(trx, key.alg) : [key];
    const revoked = [key.kid, ...targets.filter((k) => k.kid !== key.kid).map((k) => k.kid)];
    const replace = new Set(targets.map((k) => k.state));
    for (const kid of revoked) await repo.revokeKeyRow(trx, kid, now);

    // Only algorithms Gatehouse signs with get replacements; a key of an algorithm no longer in
    // use (a changed GATEHOUSE_ACCESS_TOKEN_ALG) is simply withdrawn.
    const inUse = policy.algs.includes(key.alg as SigningAlg);
    if (inUse && replace.has('current')) {
      const fresh = await newKey(key.alg as SigningAlg, sealer);
      await repo.insertKey(trx, { ...fresh, state: 'current', activated_at: now });
    }
    if (inUse && replace.has('next')) {
      const fresh = await newKey(key.alg as SigningAlg, sealer);
      await repo.insertKey(trx, { ...fresh, state: 'next' });
    }
    await bumpVersion(trx, 'keys');
    const current = await repo.keyInState(trx, key.alg, 'current');
    const next = await repo.keyInState(trx, key.alg, 'next');
    return { alg: key.alg, revoked, current: current?.kid ?? '', next: next?.kid ?? '' };
  });
}

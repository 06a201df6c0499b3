// The master key in force, and its rotation (docs/architecture.md, "Secrets at rest"; README,
// "Rotating the master key").
//
// What a rotation does to each thing that depends on the master key:
//  - sealed values (signing private keys, TOTP seeds, TOTP seeds waiting in an enrollment) are
//    opened with the old key and sealed again under the new one, in one transaction;
//  - the backup-code HMAC key is kept, sealed under the new key in master_key_check: the codes
//    already issued are stored only as HMACs and cannot be re-hashed without the codes themselves,
//    and a person would otherwise lose the factor meant for the day the phone is lost;
//  - the keys derived per use by HKDF (cookie signing, CSRF, device cookies) follow the new key:
//    browser sign-in sessions, open forms and device cookies made under the old key end, so a
//    leaked old key forges nothing after the restart. Refresh tokens, codes and access tokens do
//    not depend on the master key and keep working.
import { masterKeyCheck } from '../crypto/master-key.ts';
import { createSealer, type Sealer } from '../crypto/seal.ts';
import { bumpVersion } from '../db/change-feed.ts';
import type { Db } from '../db/handle.ts';
import { inTransaction } from '../db/transaction.ts';
import { GatehouseError, SealError } from '../errors.ts';
import { deriveBackupCodeKey } from '../mfa/backup-codes.ts';
import { totpSealContext } from '../mfa/totp.ts';
import { pendingTotpSealContext } from '../mfa/totp.strategy.ts';
import { assertMasterKeyOpens, sealContext as signingKeyContext } from './keys.service.ts';
import * as repo from './master-key.repository.ts';

const BACKUP_CODE_KEY_CONTEXT = 'backup_code_key';

/**
 * At every start (server and command line): refuse a master key that is not this database's.
 * After a rotation the stored key-check value names the key in force, and the message says so;
 * before any rotation, the key must open the stored signing keys.
 */
export async function assertMasterKey(db: Db, sealer: Sealer, masterKey: Buffer): Promise<void> {
  const row = await repo.keyCheckRow(db);
  if (row && row.check_value !== masterKeyCheck(masterKey)) {
    throw new SealError(
      `the master key is not this database's: the master key was rotated at ${new Date(row.rotated_at).toISOString()} ` +
        '(gatehouse master-key rotate); start with the new key (GATEHOUSE_MASTER_KEY, GATEHOUSE_MASTER_KEY_FILE or <data dir>/master.key)',
    );
  }
  await assertMasterKeyOpens(db, sealer);
}

/** The HMAC key for backup codes: sealed in the database once a rotation kept it, else derived from the master key. */
export async function backupCodeKey(db: Db, sealer: Sealer, masterKey: Buffer): Promise<Buffer> {
  const row = await repo.keyCheckRow(db);
  if (row?.backup_code_key_sealed) return sealer.open(row.backup_code_key_sealed, BACKUP_CODE_KEY_CONTEXT);
  return deriveBackupCodeKey(masterKey);
}

export interface RotationCounts {
  signing_keys: number;
  totp_seeds: number;
  enrollment_seeds: number;
}

/** Re-seal everything sealed under `oldKey` with `newKey`, in one transaction (or the caller's). */
export async function rotateMasterKey(db: Db, oldKey: Buffer, newKey: Buffer, now = new Date()): Promise<RotationCounts> {
  if (oldKey.equals(newKey)) {
    throw new GatehouseError('VALIDATION', 'the new master key is the key in force; generate another (openssl rand -base64 32)', {
      field: 'new-key-file',
    });
  }
  const oldSealer = createSealer(oldKey);
  const newSealer = createSealer(newKey);
  return inTransaction(db, async (trx) => {
    await repo.lockSealedTables(trx);
    await assertMasterKey(trx, oldSealer, oldKey);
    const reseal = (sealed: string, context: string) => newSealer.seal(oldSealer.open(sealed, context), context);
    const counts: RotationCounts = { signing_keys: 0, totp_seeds: 0, enrollment_seeds: 0 };
    for (const k of await repo.sealedSigningKeys(trx)) {
      await repo.setSigningKeySealed(trx, k.kid, reseal(k.private_jwk_sealed, signingKeyContext(k.kid)));
      counts.signing_keys++;
    }
    for (const t of await repo.sealedTotpSeeds(trx)) {
      await repo.setTotpSeedSealed(trx, t.id, reseal(t.seed_sealed, totpSealContext(t.id)));
      counts.totp_seeds++;
    }
    for (const e of await repo.sealedEnrollmentSeeds(trx)) {
      await repo.setEnrollmentSeedSealed(trx, e.invitation_id, reseal(e.totp_seed_sealed, pendingTotpSealContext(e.invitation_id)));
      counts.enrollment_seeds++;
    }
    const codeKey = await backupCodeKey(trx, oldSealer, oldKey);
    await repo.saveKeyCheck(trx, {
      check_value: masterKeyCheck(newKey),
      backup_code_key_sealed: newSealer.seal(codeKey, BACKUP_CODE_KEY_CONTEXT),
      rotated_at: now,
    });
    // Instances still running reload their keys and fail loudly rather than sign on silently.
    await bumpVersion(trx, 'keys');
    return counts;
  });
}

// Backup codes as a second-factor strategy (src/mfa/strategy.ts): one-time codes shown once.
import * as repo from '../accounts/factors.repository.ts';
import { regenerateBackupCodes, useBackupCode } from './backup-codes.ts';
import type { CodeFactor } from './strategy.ts';
import type { Db } from '../db/handle.ts';

export function backupCodeStrategy(key: Buffer) {
  return {
    id: 'backup',
    label: 'Backup codes',
    method: 'backup_code',
    amr: ['otp'],
    kind: 'code',
    path: 'backup-code',
    describe: (s) => ({ enrolled: s.backup_codes_left > 0, count: s.backup_codes_left }),
    remove: (db: Db, accountId: string) => repo.deleteBackupCodes(db, accountId),
    async verify(db: Db, accountId: string, code: unknown) {
      if (await useBackupCode(db, key, accountId, code)) return { ok: true } as const;
      return { ok: false, reason: 'invalid', message: 'That backup code is not valid, or was already used.' } as const;
    },
    /** A new set replacing the old one entirely; the codes in clear, shown once. */
    regenerate: (db: Db, accountId: string) => regenerateBackupCodes(db, key, accountId),
  } satisfies CodeFactor & Record<string, unknown>;
}

export type BackupCodeStrategy = ReturnType<typeof backupCodeStrategy>;

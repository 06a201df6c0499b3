// People made directly through the domain (for tests whose subject is not enrollment itself).
import { createAccount } from '../../src/accounts/accounts.service.ts';
import { hashPassword } from '../../src/accounts/password.ts';
import { adoptTotpSeed, newTotpSeed, timeStep, totpAt } from '../../src/mfa/totp.ts';
import { deriveBackupCodeKey, regenerateBackupCodes } from '../../src/mfa/backup-codes.ts';
import { createSealer } from '../../src/crypto/seal.ts';
import type { Db } from '../../src/db/handle.ts';
import type { TestServer } from './server.ts';

export const TEST_PASSWORD = 'correct horse battery staple 42';

export interface TestPerson {
  id: string;
  email: string;
  password: string;
  seed: Uint8Array;
  backupCodes: string[];
  /** A TOTP code for a step not used yet (the next step's code when the current one is spent). */
  nextCode(): Promise<string>;
}

/** Codes for steps after the last one used, as a person waiting for the app's next code would. */
export function totpClock(seed: Uint8Array, lastStep: number) {
  let last = lastStep;
  return async () => {
    for (;;) {
      const now = timeStep(Math.floor(Date.now() / 1000));
      const step = Math.max(now, last + 1);
      if (step <= now + 1) {
        last = step;
        return totpAt(seed, step * 30);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
}

export async function createPerson(s: TestServer, email: string, role = 'operator', permissions: string[] = []): Promise<TestPerson> {
  return createPersonIn(s.gatehouse.db.kysely, s.env.GATEHOUSE_MASTER_KEY!, email, role, permissions);
}

/** The same, straight into a database, for servers that run as other processes (test/server/topology.test.ts). */
export async function createPersonIn(
  db: Db,
  masterKeyBase64: string,
  email: string,
  role = 'operator',
  permissions: string[] = [],
): Promise<TestPerson> {
  const masterKey = Buffer.from(masterKeyBase64, 'base64');
  const account = await createAccount(db, { email, role, permissions, passwordHash: await hashPassword(TEST_PASSWORD) });
  const { seed } = await newTotpSeed(email);
  const step = timeStep(Math.floor(Date.now() / 1000)) - 1;
  await adoptTotpSeed(db, createSealer(masterKey), account.id, seed, step);
  const backupCodes = await regenerateBackupCodes(db, deriveBackupCodeKey(masterKey), account.id);
  return { id: account.id, email: account.email, password: TEST_PASSWORD, seed, backupCodes, nextCode: totpClock(seed, step) };
}

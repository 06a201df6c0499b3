// The master key encrypts signing keys, TOTP seeds and other secrets at rest. It comes from
// GATEHOUSE_MASTER_KEY (32 bytes, base64) or GATEHOUSE_MASTER_KEY_FILE; on the embedded default
// it is generated once into <data dir>/master.key with mode 0600.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';

function decode(name: string, text: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== 32 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    throw new ConfigError(`${name} must be 32 bytes, base64-encoded (generate one with: openssl rand -base64 32)`);
  }
  return key;
}

export function loadMasterKey(
  config: Pick<Config, 'masterKey' | 'masterKeyFile' | 'dataDir' | 'databaseUrl'>,
  notice: (msg: string) => void,
): Buffer {
  if (config.masterKey) return decode('GATEHOUSE_MASTER_KEY', config.masterKey);
  if (config.masterKeyFile) {
    let text: string;
    try {
      text = fs.readFileSync(config.masterKeyFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`GATEHOUSE_MASTER_KEY_FILE: cannot read ${config.masterKeyFile} (${(err as NodeJS.ErrnoException).code})`);
    }
    return decode('GATEHOUSE_MASTER_KEY_FILE', text);
  }
  // Several instances on PostgreSQL must share one key: a generated per-machine key would make
  // each instance unable to read what the others wrote.
  if (config.databaseUrl) {
    throw new ConfigError('GATEHOUSE_MASTER_KEY or GATEHOUSE_MASTER_KEY_FILE must be set when DATABASE_URL is set');
  }
  const file = path.join(config.dataDir, 'master.key');
  if (fs.existsSync(file)) return decode(file, fs.readFileSync(file, 'utf8'));
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const key = crypto.randomBytes(32);
  fs.writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  notice(`generated a master key in ${file}; back it up with the data directory, it cannot be recovered`);
  return key;
}

/**
 * A value that names a master key without revealing it: HMAC-SHA256 of a fixed string under a key
 * derived for this use only. Stored by a rotation (src/keys/master-key.ts) and in backup headers
 * (src/backup/), so a wrong key is refused before anything is opened or written.
 */
export function masterKeyCheck(masterKey: Buffer): string {
  const key = crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), 'gatehouse master key check v1', 32);
  return crypto.createHmac('sha256', Buffer.from(key)).update('gatehouse master key check').digest('base64url');
}

/** Read a master key file the way GATEHOUSE_MASTER_KEY_FILE is read (for `gatehouse master-key rotate --new-key-file`). */
export function readMasterKeyFile(name: string, file: string): Buffer {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
  }
  return decode(name, text);
}

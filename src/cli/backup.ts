// `gatehouse backup`, `gatehouse restore` (src/backup/) and `gatehouse master-key rotate`
// (src/keys/master-key.ts).
import fs from 'node:fs';
import path from 'node:path';
import { checkBackupFile, writeBackup, restoreBackup, type BackupSummary } from '../backup/backup.ts';
import { requestLiveBackup } from '../backup/live.ts';
import { loadConfig } from '../config/config.ts';
import { loadMasterKey, readMasterKeyFile } from '../crypto/master-key.ts';
import { dataDirHolder } from '../db/data-dir-lock.ts';
import { GatehouseError } from '../errors.ts';
import { rotateMasterKey } from '../keys/master-key.ts';
import type { Command } from './command.ts';

function backupResult(s: BackupSummary, via: string) {
  const total = Object.values(s.rows).reduce((a, b) => a + b, 0);
  return {
    json: { ok: true, file: s.file, created_at: s.created_at, migration: s.migration, rows: s.rows, via },
    text: `backup written to ${s.file}: ${total} rows in ${Object.keys(s.rows).length} tables, migration ${s.migration} (${via}). The master key is not in it: keep it apart.`,
  };
}

function requireFile(v: unknown, option: string): string {
  if (typeof v !== 'string' || v === '') throw new GatehouseError('VALIDATION', `--${option} FILE is required`, { field: option });
  return v;
}

export const backupCommands: Command[] = [
  {
    name: 'backup',
    summary: 'write a backup of the database to --out FILE (also while the server runs, on PostgreSQL and PGlite)',
    help: [
      '--out FILE   the backup to write (gzip, owner-only; refused if FILE exists)',
      '',
      'Secrets stay sealed as stored; the master key is never in the file: keep it apart.',
      'On the embedded database while the server runs, the server writes the file (asked with SIGUSR2).',
    ].join('\n'),
    options: { out: { type: 'string' } },
    async withoutContext(env, v) {
      const out = path.resolve(requireFile(v.out, 'out'));
      if (fs.existsSync(out)) throw new GatehouseError('CONFLICT', `${out} already exists; choose another name`, { field: 'out' });
      const config = loadConfig(env);
      if (config.databaseUrl) return null;
      if (!fs.existsSync(path.join(config.dataDir, 'pgdata'))) {
        throw new GatehouseError('NOT_FOUND', `there is no embedded database in ${config.dataDir} (GATEHOUSE_DATA_DIR) to back up`);
      }
      const pid = dataDirHolder(config.dataDir);
      if (!pid) return null;
      return backupResult(await requestLiveBackup(config.dataDir, pid, out), `written by the running server, process ${pid}`);
    },
    async run(ctx, v) {
      const out = requireFile(v.out, 'out');
      await ctx.audit({ action: 'backup.create', outcome: 'success', actor: 'cli', target: null, details: { file: path.resolve(out) } });
      return backupResult(await writeBackup(ctx.db.kysely, { masterKey: ctx.masterKey, out, dialect: ctx.db.dialect }), 'command line');
    },
  },
  {
    name: 'restore',
    summary: 'restore --in FILE into an empty database (same Gatehouse version, same master key), in one transaction',
    help: [
      '--in FILE   a file written by gatehouse backup',
      '',
      'The database must be empty (a new PostgreSQL database, or an empty GATEHOUSE_DATA_DIR), with no',
      'Gatehouse running on it. The master key must be the one in force when the backup was made.',
      'The whole file is checked (format, master key, SHA-256 and HMAC, row counts) before anything is written.',
    ].join('\n'),
    options: { in: { type: 'string' } },
    async withoutContext(env, v) {
      const input = path.resolve(requireFile(v.in, 'in'));
      if (!fs.existsSync(input)) throw new GatehouseError('NOT_FOUND', `${input} does not exist`, { field: 'in' });
      const config = loadConfig(env);
      // Without a key configured, the embedded default would generate a new one: never the backup's.
      if (!config.databaseUrl && !config.masterKey && !config.masterKeyFile && !fs.existsSync(path.join(config.dataDir, 'master.key'))) {
        throw new GatehouseError(
          'VALIDATION',
          `no master key: put the key the backup was made under in ${path.join(config.dataDir, 'master.key')} (mode 0600), ` +
            'or set GATEHOUSE_MASTER_KEY or GATEHOUSE_MASTER_KEY_FILE, then restore',
        );
      }
      // The whole file is checked before the database is even opened: a refusal touches nothing.
      await checkBackupFile(
        input,
        loadMasterKey(config, () => {}),
      );
      return null;
    },
    async run(ctx, v) {
      const input = path.resolve(requireFile(v.in, 'in'));
      const r = await ctx.change(
        (trx) => restoreBackup(trx, { masterKey: ctx.masterKey, input }),
        (r) => ({
          action: 'backup.restore',
          outcome: 'success',
          actor: 'cli',
          target: null,
          details: { file: input, created_at: r.created_at, rows: Object.values(r.rows).reduce((a, b) => a + b, 0) },
        }),
      );
      const total = Object.values(r.rows).reduce((a, b) => a + b, 0);
      return {
        json: { ok: true, file: input, created_at: r.created_at, migration: r.migration, rows: r.rows },
        text: `restored ${total} rows in ${Object.keys(r.rows).length} tables from ${input} (backup of ${r.created_at})`,
      };
    },
  },
  {
    name: 'master-key rotate',
    summary: 're-seal everything under the key in --new-key-file, in one transaction; then restart every instance with it',
    help: [
      '--new-key-file F   the new master key (32 bytes, base64; generate with: openssl rand -base64 32)',
      '',
      'Re-seals signing keys and TOTP seeds (also those of enrollments in progress) and keeps the',
      'backup-code key, sealed under the new key. Stop every instance first; afterwards instances',
      'with the old key refuse to start. Browser sign-in sessions and device cookies end.',
      'With the embedded default key (<data dir>/master.key), the file is replaced by the new key.',
    ].join('\n'),
    options: { 'new-key-file': { type: 'string' } },
    async run(ctx, v) {
      const file = requireFile(v['new-key-file'], 'new-key-file');
      const newKey = readMasterKeyFile('--new-key-file', file);
      const counts = await ctx.change(
        (trx) => rotateMasterKey(trx, ctx.masterKey, newKey),
        (c) => ({
          action: 'key.master_rotate',
          outcome: 'success',
          actor: 'cli',
          target: null,
          details: { resealed: c.signing_keys + c.totp_seeds + c.enrollment_seeds },
        }),
      );
      // The embedded default reads its key from the data directory: it must now hold the new one.
      let replaced: string | null = null;
      if (!ctx.config.databaseUrl && !ctx.config.masterKey && !ctx.config.masterKeyFile) {
        replaced = path.join(ctx.config.dataDir, 'master.key');
        const tmp = `${replaced}.${process.pid}.partial`;
        fs.writeFileSync(tmp, newKey.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
        fs.renameSync(tmp, replaced);
      }
      return {
        json: { ok: true, ...counts, replaced_key_file: replaced },
        text:
          `re-sealed ${counts.signing_keys} signing keys, ${counts.totp_seeds} TOTP seeds and ${counts.enrollment_seeds} pending enrollment seeds under the new master key. ` +
          (replaced ? `${replaced} now holds the new key. ` : '') +
          'Start every instance with the new key: the old key is refused from now on. Browser sessions and device cookies made under the old key have ended.',
      };
    },
  },
];

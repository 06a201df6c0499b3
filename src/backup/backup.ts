// `gatehouse backup` and `gatehouse restore` (docs/architecture.md, "Backup and restore"; README,
// "Backup and restore"). A format of our own rather than pg_dump: the same on PostgreSQL and the
// embedded PGlite, independent of the server's version, and checkable before anything is written.
//
// The file is gzip'd text, one record per line:
//   1. a header, JSON: {format: "gatehouse-backup", version: 1, created_at, dialect, migrations
//      (every applied migration, in order), key_check (names the master key, reveals nothing),
//      tables: [{name, columns, rows}] in foreign-key order};
//   2. one line per row: `<table>\t<the row as PostgreSQL's JSON>`, tables in header order;
//   3. a trailer, JSON: {end: true, sha256, hmac}: SHA-256 of every byte before the trailer, and
//      HMAC-SHA256 of the same under a key derived from the master key (a file altered and
//      re-hashed is still refused).
// Sealed values stay sealed exactly as stored; the master key itself is never in the file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import zlib from 'node:zlib';
import { deriveKey } from '../crypto/derive-key.ts';
import { masterKeyCheck } from '../crypto/master-key.ts';
import type { Db } from '../db/handle.ts';
import { inTransaction } from '../db/transaction.ts';
import { GatehouseError } from '../errors.ts';
import * as repo from './backup.repository.ts';

export const BACKUP_FORMAT = 'gatehouse-backup';
export const BACKUP_VERSION = 1;
/** Tables that migrations fill (change-feed counters): a freshly migrated database has rows only there. */
const SEEDED_BY_MIGRATIONS = new Set(['change_version']);
const BATCH_BYTES = 1 << 20;

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  created_at: string;
  dialect: string;
  migrations: string[];
  key_check: string;
  tables: { name: string; columns: string[]; rows: number }[];
}

export interface BackupSummary {
  file: string;
  created_at: string;
  migration: string | null;
  rows: Record<string, number>;
}

function macKey(masterKey: Buffer): Buffer {
  return deriveKey(masterKey, 'gatehouse backup mac v1');
}

function refused(message: string): GatehouseError {
  return new GatehouseError('VALIDATION', message, { field: 'in' });
}

/** Write a backup of everything in `db` to `out` (refused if it exists). One consistent snapshot. */
export async function writeBackup(db: Db, opts: { masterKey: Buffer; out: string; dialect: string; now?: Date }): Promise<BackupSummary> {
  const out = path.resolve(opts.out);
  if (fs.existsSync(out)) throw new GatehouseError('CONFLICT', `${out} already exists; choose another name`, { field: 'out' });
  const tmp = `${out}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.partial`;
  const created_at = (opts.now ?? new Date()).toISOString();
  const sha = crypto.createHash('sha256');
  const mac = crypto.createHmac('sha256', macKey(opts.masterKey));
  const gzip = zlib.createGzip();
  const file = fs.createWriteStream(tmp, { mode: 0o600, flags: 'wx' });
  const piped = new Promise<void>((resolve, reject) => {
    file.on('error', reject);
    gzip.on('error', reject);
    file.on('finish', () => resolve());
  });
  gzip.pipe(file);
  const write = async (line: string) => {
    const bytes = Buffer.from(line + '\n', 'utf8');
    sha.update(bytes);
    mac.update(bytes);
    if (!gzip.write(bytes)) await once(gzip, 'drain');
  };
  try {
    const rows: Record<string, number> = {};
    let migrations: string[] = [];
    // Repeatable read: every table as of one moment, while the server goes on writing (PostgreSQL).
    await db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (trx) => {
        const tables = await repo.dataTables(trx);
        migrations = await repo.appliedMigrations(trx);
        const header: BackupHeader = {
          format: BACKUP_FORMAT,
          version: BACKUP_VERSION,
          created_at,
          dialect: opts.dialect,
          migrations,
          key_check: masterKeyCheck(opts.masterKey),
          tables: [],
        };
        for (const t of tables) header.tables.push({ ...t, rows: await repo.countRows(trx, t.name) });
        await write(JSON.stringify(header));
        for (const t of header.tables) {
          const lines = await repo.rowsAsJson(trx, t.name);
          if (lines.length !== t.rows) throw new Error(`table ${t.name} changed during the backup`);
          for (const r of lines) await write(`${t.name}\t${r}`);
          rows[t.name] = t.rows;
        }
      });
    const trailer = { end: true, sha256: sha.digest('hex'), hmac: mac.digest('base64url') };
    gzip.end(Buffer.from(JSON.stringify(trailer) + '\n', 'utf8'));
    await piped;
    fs.renameSync(tmp, out);
    return { file: out, created_at, migration: migrations.at(-1) ?? null, rows };
  } catch (err) {
    gzip.destroy();
    file.destroy();
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** The lines of a gzip'd file, as text with their exact bytes (for the hashes). */
async function* lines(file: string): AsyncGenerator<{ text: string; bytes: Buffer }> {
  let input: fs.ReadStream;
  try {
    fs.accessSync(file, fs.constants.R_OK);
    input = fs.createReadStream(file);
  } catch (err) {
    throw refused(`cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
  }
  const gunzip = input.pipe(zlib.createGunzip());
  input.on('error', (err) => gunzip.destroy(err));
  let rest = Buffer.alloc(0);
  try {
    for await (const chunk of gunzip) {
      let buf = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
      let i: number;
      while ((i = buf.indexOf(0x0a)) !== -1) {
        const bytes = buf.subarray(0, i + 1);
        yield { text: bytes.subarray(0, i).toString('utf8'), bytes };
        buf = buf.subarray(i + 1);
      }
      rest = Buffer.from(buf);
    }
  } catch (err) {
    if (err instanceof GatehouseError) throw err;
    throw refused(`${file} is not a readable gatehouse backup (${(err as Error).message})`);
  }
  if (rest.length) throw refused(`${file} is truncated: it does not end with a complete line`);
}

interface Pass {
  header: BackupHeader;
  counts: Map<string, number>;
}

/**
 * Read the whole file: header, rows in header order, counts, trailer and both hashes. With
 * `onRow`, hand every row on (the second pass, inside the restore transaction).
 */
async function readBackup(
  file: string,
  masterKey: Buffer,
  onRow?: (table: string, json: string) => Promise<void>,
  onHeader?: (header: BackupHeader) => Promise<void>,
): Promise<Pass> {
  const sha = crypto.createHash('sha256');
  const mac = crypto.createHmac('sha256', macKey(masterKey));
  let header: BackupHeader | null = null;
  let trailer: { end?: unknown; sha256?: unknown; hmac?: unknown } | null = null;
  const counts = new Map<string, number>();
  let tableIndex = 0;
  for await (const line of lines(file)) {
    if (trailer) throw refused(`${file} has data after its end: altered`);
    if (!header) {
      let h: BackupHeader;
      try {
        h = JSON.parse(line.text) as BackupHeader;
      } catch {
        throw refused(`${file} is not a gatehouse backup (no header)`);
      }
      if (h?.format !== BACKUP_FORMAT) throw refused(`${file} is not a gatehouse backup (format ${JSON.stringify(h?.format)})`);
      if (h.version !== BACKUP_VERSION) {
        throw refused(`${file} is a gatehouse backup of format version ${h.version}; this Gatehouse reads version ${BACKUP_VERSION}`);
      }
      if (!Array.isArray(h.tables) || !Array.isArray(h.migrations)) throw refused(`${file} has a malformed header`);
      // Before anything else: a backup made under another master key is useless here (every sealed
      // value would fail to open), so say that, rather than "altered".
      if (h.key_check !== masterKeyCheck(masterKey)) {
        throw refused(
          `${file} was made under another master key: restore with the master key in force when it was made ` +
            '(GATEHOUSE_MASTER_KEY, GATEHOUSE_MASTER_KEY_FILE or <data dir>/master.key); nothing was written',
        );
      }
      header = h;
      for (const t of h.tables) counts.set(t.name, 0);
      await onHeader?.(h);
    } else if (line.text.startsWith('{')) {
      try {
        trailer = JSON.parse(line.text);
      } catch {
        throw refused(`${file} has a malformed line: altered`);
      }
      continue;
    } else {
      const tab = line.text.indexOf('\t');
      const table = tab > 0 ? line.text.slice(0, tab) : '';
      if (!counts.has(table)) throw refused(`${file} has a row for a table not in its header: altered`);
      // Rows come table by table in header order.
      while (header.tables[tableIndex]?.name !== table) {
        tableIndex++;
        if (tableIndex >= header.tables.length) throw refused(`${file} has rows out of order: altered`);
      }
      counts.set(table, counts.get(table)! + 1);
      if (onRow) await onRow(table, line.text.slice(tab + 1));
    }
    sha.update(line.bytes);
    mac.update(line.bytes);
  }
  if (!header) throw refused(`${file} is empty`);
  if (!trailer || trailer.end !== true) throw refused(`${file} is truncated: it has no end record`);
  if (trailer.sha256 !== sha.digest('hex'))
    throw refused(`${file} was altered or damaged: its SHA-256 does not match; nothing was written`);
  const expected = mac.digest();
  const given = Buffer.from(String(trailer.hmac ?? ''), 'base64url');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    throw refused(`${file} was altered: its HMAC does not match (the content was changed and re-hashed); nothing was written`);
  }
  for (const t of header.tables) {
    if (counts.get(t.name) !== t.rows)
      throw refused(`${file} was altered: table ${t.name} has ${counts.get(t.name)} rows, its header says ${t.rows}`);
  }
  return { header, counts };
}

/**
 * The first pass alone: refuse a file that is not a whole, unaltered backup made under this master
 * key, before any database is opened (`gatehouse restore` runs it first).
 */
export async function checkBackupFile(file: string, masterKey: Buffer): Promise<BackupHeader> {
  return (await readBackup(path.resolve(file), masterKey)).header;
}

export interface RestoreSummary {
  created_at: string;
  migration: string | null;
  rows: Record<string, number>;
  sequences: string[];
}

/**
 * Restore `file` into `db`: checked in full first (format, master key, hashes, counts), then, in
 * one transaction (the caller's, if `db` is one), checked against the database (same migrations,
 * same columns, empty) and written. Any refusal or failure leaves the database as it was.
 */
export async function restoreBackup(db: Db, opts: { masterKey: Buffer; input: string }): Promise<RestoreSummary> {
  const input = path.resolve(opts.input);
  const first = await readBackup(input, opts.masterKey);
  return inTransaction(db, async (trx) => {
    const tables = await repo.dataTables(trx);
    const migrations = await repo.appliedMigrations(trx);
    const h = first.header;
    if (JSON.stringify(migrations) !== JSON.stringify(h.migrations)) {
      throw refused(
        `the backup was made at migration ${h.migrations.at(-1) ?? '(none)'}, this database is at ${migrations.at(-1) ?? '(none)'}: ` +
          'restore with the Gatehouse version that made the backup, then upgrade',
      );
    }
    const byName = new Map(tables.map((t) => [t.name, t]));
    for (const t of h.tables) {
      const here = byName.get(t.name);
      if (!here || JSON.stringify(here.columns) !== JSON.stringify(t.columns)) {
        throw refused(`table ${t.name} differs between the backup and this database; nothing was written`);
      }
    }
    await repo.lockTables(
      trx,
      tables.map((t) => t.name),
    );
    const nonEmpty: string[] = [];
    for (const t of tables) if (!SEEDED_BY_MIGRATIONS.has(t.name) && (await repo.hasRows(trx, t.name))) nonEmpty.push(t.name);
    if (nonEmpty.length) {
      throw new GatehouseError(
        'CONFLICT',
        `the database is not empty (rows in ${nonEmpty.join(', ')}): restore only into a new database ` +
          '(an empty PostgreSQL database, or an empty GATEHOUSE_DATA_DIR) with no Gatehouse running on it; nothing was written',
      );
    }
    for (const t of SEEDED_BY_MIGRATIONS) if (byName.has(t) && h.tables.some((x) => x.name === t)) await repo.deleteAll(trx, t);
    let batch: string[] = [];
    let batchTable = '';
    let batchBytes = 0;
    const flush = async () => {
      await repo.insertJsonRows(trx, batchTable, batch);
      batch = [];
      batchBytes = 0;
    };
    // The second pass re-checks the hashes as it writes: a file changed between the passes rolls back.
    await readBackup(input, opts.masterKey, async (table, json) => {
      if (table !== batchTable || batchBytes > BATCH_BYTES) {
        await flush();
        batchTable = table;
      }
      batch.push(json);
      batchBytes += json.length;
    });
    await flush();
    const sequences = await repo.resetSequences(trx);
    return { created_at: h.created_at, migration: h.migrations.at(-1) ?? null, rows: Object.fromEntries(first.counts), sequences };
  });
}

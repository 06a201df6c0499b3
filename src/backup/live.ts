// A backup of the embedded database while the server runs (docs/architecture.md, "Backup and
// restore"). PGlite is one process's database and the running server holds the data directory
// (src/db/data-dir-lock.ts), so the server itself writes the backup: `gatehouse backup` leaves a
// request in the data directory (owner-only, mode 0700: whoever may write there may read the
// database anyway) and sends the server SIGUSR2; the server writes the file the request names and
// answers with a response file beside it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.ts';
import { EnvironmentError, isExposed } from '../errors.ts';
import type { BackupSummary } from './backup.ts';

const REQUEST = 'backup-request.json';
const responseFile = (dataDir: string, id: string) => path.join(dataDir, `backup-response-${id}.json`);

/** The command line's side: ask the server `pid` for a backup to `out`, and wait for its answer. */
export async function requestLiveBackup(dataDir: string, pid: number, out: string, timeoutMs = 120_000): Promise<BackupSummary> {
  const id = crypto.randomBytes(8).toString('hex');
  const request = path.join(dataDir, REQUEST);
  const response = responseFile(dataDir, id);
  fs.writeFileSync(request, JSON.stringify({ id, out: path.resolve(out) }), { mode: 0o600 });
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fs.existsSync(response)) {
      const answer = JSON.parse(fs.readFileSync(response, 'utf8')) as { ok: boolean; summary?: BackupSummary; error?: string };
      fs.rmSync(response, { force: true });
      if (!answer.ok) throw new EnvironmentError(`the running server (process ${pid}) could not write the backup: ${answer.error}`);
      return answer.summary!;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fs.rmSync(request, { force: true });
  throw new EnvironmentError(
    `the running server (process ${pid}) did not answer the backup request within ${timeoutMs / 1000} s ` +
      '(a Gatehouse older than this command, or not started with npm start?)',
  );
}

/** The server's side, on SIGUSR2: take the request, write the backup, answer. */
export async function answerBackupRequest(dataDir: string, backup: (out: string) => Promise<BackupSummary>, log: Logger): Promise<void> {
  const request = path.join(dataDir, REQUEST);
  let req: { id?: unknown; out?: unknown };
  try {
    req = JSON.parse(fs.readFileSync(request, 'utf8'));
    fs.rmSync(request, { force: true });
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'SIGUSR2 without a readable backup request: ignored');
    return;
  }
  if (typeof req.id !== 'string' || !/^[0-9a-f]{16}$/.test(req.id) || typeof req.out !== 'string' || !path.isAbsolute(req.out)) {
    log.warn('malformed backup request: ignored');
    return;
  }
  let answer: { ok: boolean; summary?: BackupSummary; error?: string };
  try {
    const summary = await backup(req.out);
    log.info({ file: summary.file }, 'backup written');
    answer = { ok: true, summary };
  } catch (err) {
    log.error({ err: (err as Error).message }, 'backup failed');
    answer = { ok: false, error: isExposed(err) ? err.message : 'internal error' };
  }
  const tmp = responseFile(dataDir, req.id) + '.partial';
  fs.writeFileSync(tmp, JSON.stringify(answer), { mode: 0o600 });
  fs.renameSync(tmp, responseFile(dataDir, req.id));
}

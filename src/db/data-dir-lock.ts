// PGlite is one process's database: two processes opening the same directory would corrupt it.
// A lock file holding the owner's pid lets a second process say clearly who holds it.
import fs from 'node:fs';
import path from 'node:path';
import { DataDirInUseError } from '../errors.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of another live process holding the data directory (a running server), or null. */
export function dataDirHolder(dataDir: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dataDir, 'gatehouse.lock'), 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid !== process.pid && alive(pid) ? pid : null;
}

export function acquireDataDirLock(dataDir: string): () => void {
  const file = path.join(dataDir, 'gatehouse.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid !== process.pid && alive(pid)) {
        throw new DataDirInUseError(
          `the embedded database in ${dataDir} is in use by process ${pid} (a running Gatehouse server?). ` +
            'Stop that process first, or run Gatehouse on PostgreSQL (DATABASE_URL) to use the command line while the server runs.',
        );
      }
      if (pid === process.pid) throw new DataDirInUseError(`the embedded database in ${dataDir} is already open in this process`);
      fs.rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  throw new DataDirInUseError(`could not lock ${dataDir}`);
}

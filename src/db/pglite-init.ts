// The first start of the embedded database, in a short-lived child process. Creating a PGlite
// data directory runs initdb inside PGlite's WebAssembly heap, which grows and never shrinks,
// and leaves glibc arenas behind: a server that created its directory itself sat at 416-465 MiB
// idle, one that opened an existing directory at 276-294 MiB (README, "Sizing"). So `npm start`
// on a new data directory lets a child create it and apply the migrations, then opens it as it
// would after a restart. Only a memory saving: if the child fails, the server creates the
// directory itself, and any error is reported as it always was.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from './connect.ts';
import { migrateToLatest } from './migrate.ts';

/** Whether `dataDir` holds no embedded database yet. */
export function isNewDataDir(dataDir: string): boolean {
  return !fs.existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'));
}

/** Create and migrate the embedded database in `dataDir` in a child process, if it is new. True when the child did it. */
export async function initializeInChild(dataDir: string): Promise<boolean> {
  if (!isNewDataDir(dataDir)) return false;
  return new Promise<boolean>((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), dataDir], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0 && !isNewDataDir(dataDir)));
  });
}

if (import.meta.main) {
  const db = await openDatabase({ databaseUrl: null, dataDir: process.argv[2]! });
  try {
    await migrateToLatest(db);
  } finally {
    await db.close();
  }
}

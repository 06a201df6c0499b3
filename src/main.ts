// `npm start`: run Gatehouse as a server until SIGTERM or SIGINT; SIGHUP reloads the TLS
// certificate, SIGUSR2 answers a backup request (docs/architecture.md, "Shutdown", "Backup and restore").
import { applyMemorySettings, collectStartupGarbage } from './memory-settings.ts';

// First, before the server's modules are loaded (seconds of work that a re-exec would repeat):
// run with the memory settings that must be in place at process start (src/memory-settings.ts).
applyMemorySettings();
const [
  { createGatehouse },
  { loadConfig },
  { ConfigError, isExposed },
  { createLogger },
  { onServerStarted },
  { answerBackupRequest },
  { initializeInChild },
] = await Promise.all([
  import('./app.ts'),
  import('./config/config.ts'),
  import('./errors.ts'),
  import('./log.ts'),
  import('./startup.ts'),
  import('./backup/live.ts'),
  import('./db/pglite-init.ts'),
]);

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gatehouse: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  // A new embedded database is created by a child process, so its initdb heap is not this one's.
  if (!config.databaseUrl && (await initializeInChild(config.dataDir))) log.info({ dataDir: config.dataDir }, 'embedded database created');
  const gatehouse = await createGatehouse(config, { log });
  // Installed before listening: a signal that arrives first must not end the process (their default).
  // A renewed certificate, now (the files are also watched: src/http/server.ts).
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading the TLS certificate');
    gatehouse.reloadTls();
  });
  // `gatehouse backup` on the embedded database while this server holds it (src/backup/live.ts).
  process.on('SIGUSR2', () => {
    answerBackupRequest(config.dataDir, (out) => gatehouse.backup(out), log).catch((err) => log.error({ err }, 'backup request failed'));
  });
  const { url } = await gatehouse.listen();
  log.info({ url, issuer: config.issuer, database: gatehouse.db.dialect }, 'gatehouse listening');
  await onServerStarted(gatehouse);
  collectStartupGarbage();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainSeconds: config.drainSeconds }, 'draining, then shutting down');
    gatehouse
      .drain()
      .then(() => gatehouse.close())
      .then(() => process.exit(0))
      .catch((err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  if (isExposed(err)) {
    process.stderr.write(`gatehouse: ${err.message}\n`);
  } else {
    process.stderr.write(`gatehouse: failed to start: ${(err as Error)?.stack ?? err}\n`);
  }
  process.exit(1);
});

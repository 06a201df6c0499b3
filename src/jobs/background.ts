// What every instance does on a timer: expired-row cleanup, automatic key rotation and audit
// checkpoints. A failure is logged and retried at the next tick, never fatal.
import type { Sealer } from '../crypto/seal.ts';
import type { AuditSink } from '../audit/sink.ts';
import { scheduleCheckpoints } from '../audit/checkpoint.ts';
import { checkpointAndExport } from '../audit/export.ts';
import type { Metrics } from '../http/metrics.ts';
import { rotateIfDue, type KeyPolicy } from '../keys/keys.service.ts';
import type { Logger } from '../log.ts';
import { cleanupExpired } from './cleanup.ts';
import type { Db } from '../db/handle.ts';

const CHECKPOINT_EVERY_MS = 5 * 60_000;
const CLEANUP_EVERY_MS = 10 * 60_000;
const KEY_ROTATION_CHECK_EVERY_MS = 60_000;

export interface BackgroundJobDeps {
  db: Db;
  sealer: Sealer;
  keyPolicy: KeyPolicy;
  keyRotationSeconds: number;
  audit: AuditSink;
  log: Logger;
  /** GATEHOUSE_AUDIT_EXPORT_DIR: each checkpoint also exports (src/audit/export.ts). */
  auditExportDir?: string | null;
  metrics?: Metrics;
}

/**
 * One periodic checkpoint (and export): what the timer runs. An export failure does not undo the
 * checkpoint; it is logged at error level and counted (gatehouse_audit_exports_total{outcome=
 * "failed"}), and the next checkpoint exports every event since the last digest.
 */
export function checkpointJob(deps: Pick<BackgroundJobDeps, 'db' | 'sealer' | 'log' | 'auditExportDir' | 'metrics'>): () => Promise<void> {
  return async () => {
    const r = await checkpointAndExport(deps.db, deps.sealer, deps.auditExportDir ?? null);
    if (!deps.auditExportDir || !r.checkpoint) return;
    if (r.exportError) {
      deps.metrics?.auditExports.inc({ outcome: 'failed' });
      deps.log.error(
        { err: r.exportError.message, dir: deps.auditExportDir, checkpoint_seq: r.checkpoint.seq },
        'audit export failed; the checkpoint is recorded and the next one retries the export',
      );
    } else if (r.exported) {
      deps.metrics?.auditExports.inc({ outcome: 'written' });
      deps.metrics?.auditExportedSeq.set(r.exported.lastSeq);
      deps.log.info({ first_seq: r.exported.firstSeq, last_seq: r.exported.lastSeq, digest: r.exported.digest }, 'audit exported');
    } else {
      deps.metrics?.auditExports.inc({ outcome: 'nothing_new' });
    }
  };
}

export function startBackgroundJobs(deps: BackgroundJobDeps): { stop(): Promise<void> } {
  const { db, log } = deps;
  const timers: NodeJS.Timeout[] = [];
  const checkpoints = scheduleCheckpoints({
    db,
    sealer: deps.sealer,
    intervalMs: CHECKPOINT_EVERY_MS,
    run: checkpointJob(deps),
    onError: (err) => log.warn({ err: (err as Error).message }, 'audit checkpoint failed'),
  });
  const every = (ms: number, name: string, fn: () => Promise<unknown>) => {
    timers.push(
      setInterval(() => fn().catch((err) => log.warn({ err: (err as Error).message, job: name }, 'background job failed')), ms).unref(),
    );
  };
  every(CLEANUP_EVERY_MS, 'cleanup', async () => {
    const { payloads, keys, flows } = await cleanupExpired(db);
    if (payloads || keys || flows) log.info({ payloads, keys, flows }, 'expired rows deleted');
  });
  every(KEY_ROTATION_CHECK_EVERY_MS, 'key-rotation', async () => {
    const rotated = await rotateIfDue(db, deps.sealer, deps.keyPolicy, deps.keyRotationSeconds);
    if (rotated.length) {
      log.info({ rotated }, 'signing keys rotated automatically');
      await deps.audit({ action: 'key.rotate', outcome: 'success', actor: 'system', details: { automatic: true, rotated } });
    }
  });
  return {
    async stop() {
      for (const t of timers) clearInterval(t);
      await checkpoints.stop();
    },
  };
}

import fs from 'node:fs';
import path from 'node:path';
import type { JWK } from 'jose';
import { checkpointAndExport } from '../audit/export.ts';
import { verifyExport } from '../audit/verify-export.ts';
import { GatehouseError } from '../errors.ts';
import { listAudit } from '../audit/query.ts';
import { verifyAudit } from '../audit/verify.ts';
import { ensureKeys } from '../keys/keys.service.ts';
import type { Command } from './command.ts';

/** The keys of a JWKS file (--jwks): refused with a precise message unless it is one. */
function readJwks(file: string): JWK[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new GatehouseError('VALIDATION', `--jwks ${file}: cannot read a JSON file (${(err as Error).message})`);
  }
  const keys = (parsed as { keys?: unknown })?.keys;
  if (
    !Array.isArray(keys) ||
    keys.some((k) => typeof k !== 'object' || k === null || typeof k.kid !== 'string' || typeof k.alg !== 'string')
  )
    throw new GatehouseError('VALIDATION', `--jwks ${file}: not a JWKS ({"keys": [...]} with a kid and alg on every key)`);
  return keys as JWK[];
}

export const auditCommands: Command[] = [
  {
    name: 'audit verify',
    summary:
      'recompute the audit chain and check its signed checkpoints (exit 1 naming the first bad event); --export DIR also checks an export',
    help: [
      '--export DIR   also check the export written by GATEHOUSE_AUDIT_EXPORT_DIR (or a copy of it): the digest',
      "               chain and signatures, each file's SHA-256, that the database still holds every exported",
      '               event as exported (naming the first one changed, deleted or rewritten), and seq ranges',
      '               with no digest. Every finding is a line on stderr; exit 1 on any.',
      '--jwks FILE    with --export: verify digests with the keys in this JWKS (kept outside the database,',
      '               retired keys included) instead of the public keys in signing_key',
    ].join('\n'),
    options: { export: { type: 'string' }, jwks: { type: 'string' } },
    async run(ctx, v) {
      if (v.jwks !== undefined && v.export === undefined) throw new GatehouseError('VALIDATION', '--jwks goes with --export DIR');
      const r = await verifyAudit(ctx.db.kysely);
      const chain = r.ok
        ? { ok: true, events: r.events, checkpoints: r.checkpoints, last_checkpoint_seq: r.lastCheckpointSeq }
        : { ok: false, events: r.events, first_bad_seq: r.firstBadSeq, reason: r.reason };
      if (v.export === undefined) {
        if (r.ok) {
          const tail = r.lastCheckpointSeq === null ? 'no checkpoint yet' : `last checkpoint at event ${r.lastCheckpointSeq}`;
          return { json: chain, text: `audit log intact: ${r.events} events, ${r.checkpoints} checkpoints (${tail})` };
        }
        // A broken chain is the answer to the question asked, not a failure to answer it: the
        // JSON goes to stdout as usual, and the exit code says it is bad news.
        return {
          json: chain,
          text: `audit log BROKEN at event ${r.firstBadSeq} (${r.events} events stored)`,
          stderr: `first bad event: seq ${r.firstBadSeq}: ${r.reason}`,
          exitCode: 1,
        };
      }
      const dir = path.resolve(String(v.export));
      const x = await verifyExport(ctx.db.kysely, dir, v.jwks === undefined ? {} : { jwks: readJwks(String(v.jwks)) });
      const ok = r.ok && x.ok;
      const firstBad = [r.ok ? null : r.firstBadSeq, x.firstBadSeq].filter((s): s is number => s !== null);
      const json = {
        ...chain,
        ok,
        ...(firstBad.length ? { first_bad_seq: Math.min(...firstBad) } : {}),
        export: {
          dir,
          ok: x.ok,
          digests: x.digests,
          exported_through: x.exportedThrough,
          not_yet_exported: x.notYetExported,
          findings: x.findings,
        },
      };
      const lines = [
        ...(r.ok ? [] : [`database chain: first bad event: seq ${r.firstBadSeq}: ${r.reason}`]),
        ...x.findings.map((f) => `export: ${f.message}`),
      ];
      const pending = x.notYetExported ? `; events ${x.notYetExported.from} to ${x.notYetExported.through} not exported yet` : '';
      const summary = `${x.digests} digests, exported through event ${x.exportedThrough ?? 0}${pending}`;
      if (ok)
        return {
          json,
          text: `audit log intact: ${r.events} events, ${r.ok ? r.checkpoints : 0} checkpoints; export in ${dir} agrees: ${summary}`,
        };
      return {
        json,
        text: `audit log or export BROKEN: ${lines.length} finding${lines.length === 1 ? '' : 's'}${firstBad.length ? `, first bad event ${Math.min(...firstBad)}` : ''} (${summary})`,
        stderr: lines.join('\n'),
        exitCode: 1,
      };
    },
  },
  {
    name: 'audit checkpoint',
    summary: 'sign the head of the audit chain now; with GATEHOUSE_AUDIT_EXPORT_DIR, export the events since the last export',
    options: {},
    async run(ctx) {
      await ensureKeys(ctx.db.kysely, ctx.sealer, ctx.keyPolicy);
      const dir = ctx.config.auditExportDir;
      const r = await checkpointAndExport(ctx.db.kysely, ctx.sealer, dir);
      if (!r.checkpoint) return { json: { ok: true, checkpoint: null }, text: 'the audit log is empty: nothing to sign' };
      const { jws: _jws, ...shown } = r.checkpoint;
      const text = `checkpoint at event ${shown.seq}: ${shown.hash} (signed at ${shown.time} with key ${shown.kid})`;
      if (!dir) return { json: { ok: true, checkpoint: shown }, text };
      if (r.exportError)
        // The checkpoint is in the database; only the export failed: exit 1, saying so.
        return {
          json: { ok: false, checkpoint: shown, export: { dir, error: r.exportError.message } },
          text: `${text}\nexport to ${dir} FAILED (the checkpoint is recorded; the next checkpoint retries)`,
          stderr: r.exportError.message,
          exitCode: 1,
        };
      const exported = r.exported && {
        first_seq: r.exported.firstSeq,
        last_seq: r.exported.lastSeq,
        digest: r.exported.digest,
        files: r.exported.files,
        kid: r.exported.kid,
      };
      return {
        json: { ok: true, checkpoint: shown, export: { dir, exported } },
        text: `${text}\n${exported ? `exported events ${exported.first_seq} to ${exported.last_seq}: ${path.join(dir, exported.digest)}` : `already exported through event ${shown.seq}`}`,
      };
    },
  },
  {
    name: 'audit list',
    summary: 'list audit events, newest first (--action, --actor, --target, --outcome, --source, --since, --until, --before-seq, --limit)',
    options: {
      action: { type: 'string' },
      actor: { type: 'string' },
      target: { type: 'string' },
      outcome: { type: 'string' },
      source: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      'before-seq': { type: 'string' },
      limit: { type: 'string' },
    },
    async run(ctx, v) {
      const { 'before-seq': beforeSeq, json: _json, ...rest } = v;
      const page = await listAudit(ctx.db.kysely, { ...rest, ...(beforeSeq === undefined ? {} : { beforeSeq }) });
      const text = page.events.length
        ? page.events
            .map((e) =>
              [
                e.seq,
                e.time,
                e.outcome.padEnd(7),
                e.action,
                e.actor,
                e.target ?? '-',
                e.ip ?? '-',
                JSON.stringify(e.details),
                ...(e.source ? [`source=${e.source}`, `event_id=${e.eventId}`, `producer_time=${e.producerTime}`] : []),
              ].join('  '),
            )
            .join('\n') + (page.nextBeforeSeq ? `\n(older events: --before-seq ${page.nextBeforeSeq})` : '')
        : 'no events';
      return { json: { events: page.events, next_before_seq: page.nextBeforeSeq }, text };
    },
  },
];

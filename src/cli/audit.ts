import { writeCheckpoint } from '../audit/checkpoint.ts';
import { listAudit } from '../audit/query.ts';
import { verifyAudit } from '../audit/verify.ts';
import { ensureKeys } from '../keys/keys.service.ts';
import type { Command } from './command.ts';

export const auditCommands: Command[] = [
  {
    name: 'audit verify',
    summary: 'recompute the audit chain and check its signed checkpoints (exit 1 naming the first bad event)',
    options: {},
    async run(ctx) {
      const r = await verifyAudit(ctx.db.kysely);
      if (r.ok) {
        const tail = r.lastCheckpointSeq === null ? 'no checkpoint yet' : `last checkpoint at event ${r.lastCheckpointSeq}`;
        return {
          json: { ok: true, events: r.events, checkpoints: r.checkpoints, last_checkpoint_seq: r.lastCheckpointSeq },
          text: `audit log intact: ${r.events} events, ${r.checkpoints} checkpoints (${tail})`,
        };
      }
      // A broken chain is the answer to the question asked, not a failure to answer it: the
      // JSON goes to stdout as usual, and the exit code says it is bad news.
      return {
        json: { ok: false, events: r.events, first_bad_seq: r.firstBadSeq, reason: r.reason },
        text: `audit log BROKEN at event ${r.firstBadSeq} (${r.events} events stored)`,
        stderr: `first bad event: seq ${r.firstBadSeq}: ${r.reason}`,
        exitCode: 1,
      };
    },
  },
  {
    name: 'audit checkpoint',
    summary: 'sign the head of the audit chain now',
    options: {},
    async run(ctx) {
      await ensureKeys(ctx.db.kysely, ctx.sealer, ctx.keyPolicy);
      const cp = await writeCheckpoint(ctx.db.kysely, ctx.sealer);
      if (!cp) return { json: { ok: true, checkpoint: null }, text: 'the audit log is empty: nothing to sign' };
      const { jws: _jws, ...shown } = cp;
      return {
        json: { ok: true, checkpoint: shown },
        text: `checkpoint at event ${cp.seq}: ${cp.hash} (signed at ${cp.time} with key ${cp.kid})`,
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

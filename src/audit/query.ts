// Reading the audit log (owners and auditors: docs/architecture.md, "Audit log"). Newest first, keyset
// pagination on seq: pass the returned `nextBeforeSeq` as `beforeSeq` for the next page.
import { z } from 'zod';
import { parseOrThrow } from '../errors.ts';
import { AUDIT_OUTCOMES } from './actions.ts';
import * as repo from './audit.repository.ts';
import { toAuditEvent, type AuditEvent } from './audit.service.ts';
import type { Db } from '../db/handle.ts';

export const AUDIT_PAGE_MAX = 200;

/** Accepts the strings of a query string too, so that the HTTP edge can pass them through. */
export const auditQuerySchema = z
  .object({
    action: z.string().min(1).max(64).optional(),
    actor: z.string().min(1).max(80).optional(),
    target: z.string().min(1).max(256).optional(),
    outcome: z.enum(AUDIT_OUTCOMES).optional(),
    /** Ingested events of one client (POST /audit/events): its client id. */
    source: z.string().min(1).max(80).optional(),
    since: z.coerce.date().optional(),
    until: z.coerce.date().optional(),
    beforeSeq: z.coerce.number().int().min(1).optional(),
    limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).default(50),
  })
  .strict();

export type AuditQuery = z.input<typeof auditQuerySchema>;

export interface AuditPage {
  events: AuditEvent[];
  /** The `beforeSeq` of the next (older) page, or null when this is the last one. */
  nextBeforeSeq: number | null;
}

export async function listAudit(db: Db, query: AuditQuery = {}): Promise<AuditPage> {
  const f = parseOrThrow(auditQuerySchema, query, { subject: 'audit query', whole: 'query' });
  // One row more than asked tells whether an older page exists without a count.
  const rows = await repo.queryEvents(db, { ...f, limit: f.limit + 1 });
  const events = rows.slice(0, f.limit).map(toAuditEvent);
  return { events, nextBeforeSeq: rows.length > f.limit ? events[events.length - 1]!.seq : null };
}

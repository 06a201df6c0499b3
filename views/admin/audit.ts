// The audit log: filters, the chain's verification, events newest first, older pages.
import { html } from '../../src/http/html.ts';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES } from '../../src/audit/actions.ts';
import { INGEST_ACTION_NAMES } from '../../src/audit/ingest.ts';
import { adminLayout, when, type AdminFrame } from './layout.ts';

/** One audit event as the page lists it. */
export interface AuditEventView {
  seq: number;
  time: string;
  actor: string;
  ip: string | null;
  action: string;
  target: string | null;
  outcome: string;
  requestId: string | null;
  details: Record<string, unknown>;
  /** Ingested events: the client that sent it, the producer's event id and time. */
  source: string | null;
  eventId: string | null;
  producerTime: string | null;
}

/** The chain check's result, as the page reports it. */
export type AuditCheckView =
  | { ok: true; events: number; checkpoints: number; lastCheckpointSeq: number | null; fromCheckpointSeq?: number }
  | { ok: false; events: number; firstBadSeq: number; reason: string };

export interface AuditFilter {
  action: string;
  actor: string;
  outcome: string;
  source: string;
}

export function auditPage(
  f: AdminFrame,
  p: {
    events: AuditEventView[];
    filter: AuditFilter;
    verify: AuditCheckView;
    olderHref: string | null;
    newestHref: string | null;
    error?: string | null;
  },
): string {
  const v = p.verify;
  return adminLayout(f, {
    title: 'Audit log',
    section: 'audit',
    error: p.error ?? null,
    body: html`${
      v.ok && v.fromCheckpointSeq
        ? html`<p class="chain ok" data-chain="ok">The audit chain verifies: ${v.events} event${v.events === 1 ? '' : 's'}; the signed checkpoint at event ${v.fromCheckpointSeq} and the events after it were checked (<code>gatehouse audit verify</code> walks the whole chain).</p>`
        : v.ok
          ? html`<p class="chain ok" data-chain="ok">The audit chain verifies: ${v.events} event${v.events === 1 ? '' : 's'}, ${v.checkpoints} signed checkpoint${v.checkpoints === 1 ? '' : 's'}${v.lastCheckpointSeq ? ` (the last at event ${v.lastCheckpointSeq})` : ''}.</p>`
          : html`<p role="alert" class="chain broken" data-chain="broken" data-first-bad-seq="${v.firstBadSeq}">The audit chain does not verify: the first bad event is ${v.firstBadSeq}. ${v.reason}</p>`
    }
<form method="get" action="/admin/audit" class="filters" role="search">
<div><label for="action">Action</label><select id="action" name="action"><option value="">any action</option>${[...AUDIT_ACTIONS, ...INGEST_ACTION_NAMES].map((a) => html`<option value="${a}"${a === p.filter.action ? html` selected` : ''}>${a}</option>`)}</select></div>
<div><label for="actor">Actor</label><input id="actor" name="actor" type="text" maxlength="80" value="${p.filter.actor}" placeholder="usr_…, svc_…, cli"></div>
<div><label for="source">Source</label><input id="source" name="source" type="text" maxlength="80" value="${p.filter.source}" placeholder="a client id (svc_…)"></div>
<div><label for="outcome">Outcome</label><select id="outcome" name="outcome"><option value="">any outcome</option>${AUDIT_OUTCOMES.map((o) => html`<option value="${o}"${o === p.filter.outcome ? html` selected` : ''}>${o}</option>`)}</select></div>
<div><button type="submit">Filter</button></div>
</form>
${
  p.events.length
    ? html`<table aria-label="Audit events" class="audit">
<thead><tr><th scope="col">Seq</th><th scope="col">Time</th><th scope="col">Action</th><th scope="col">Outcome</th><th scope="col">Actor</th><th scope="col">Target</th><th scope="col">Source IP</th><th scope="col">Request ID</th><th scope="col">Source</th><th scope="col">Details</th></tr></thead>
<tbody>${p.events.map(
        (e) => html`<tr data-seq="${e.seq}">
<td data-label="Seq">${e.seq}</td>
<td data-label="Time">${when(e.time)}</td>
<td data-label="Action">${e.action}</td>
<td data-label="Outcome"><span class="status ${e.outcome}">${e.outcome}</span></td>
<td data-label="Actor"><a href="/admin/audit?actor=${encodeURIComponent(e.actor)}"><code>${e.actor}</code></a></td>
<td data-label="Target">${e.target ? html`<code>${e.target}</code>` : html`<span class="muted">—</span>`}</td>
<td data-label="Source IP">${e.ip ?? '—'}</td>
<td data-label="Request ID"><code>${e.requestId ?? '—'}</code></td>
<td data-label="Source">${e.source ? html`<a href="/admin/audit?source=${encodeURIComponent(e.source)}"><code>${e.source}</code></a><br><span class="muted">event <code>${e.eventId ?? ''}</code>, at the source ${when(e.producerTime ?? e.time)}</span>` : html`<span class="muted">Gatehouse</span>`}</td>
<td data-label="Details"><code class="details">${Object.keys(e.details).length ? JSON.stringify(e.details) : ''}</code></td>
</tr>`,
      )}</tbody>
</table>`
    : html`<p>No event matches.</p>`
}
<nav class="pages" aria-label="Pages">${p.newestHref ? html`<a href="${p.newestHref}">Newest events</a>` : ''}${p.olderHref ? html`<a href="${p.olderHref}">Older events</a>` : ''}</nav>`,
  });
}

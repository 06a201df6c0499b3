// What the HTTP edge and the CLI hand an audit event to. The server wires it to an AuditQueue
// (events that stand alone, batched); a change that must not happen unrecorded calls
// appendAudit in its own transaction instead.
import type { AuditEventInput } from './event.ts';

export type { AuditEventInput };
export type AuditSink = (event: AuditEventInput) => Promise<void>;

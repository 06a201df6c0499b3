// What the HTTP edge hands an audit event to. The server wires it to the audit log; an event
// never carries a secret (the audit domain refuses secret-looking keys).
export interface AuditEventInput {
  action: string;
  outcome: 'success' | 'failure' | 'denied';
  actor: string;
  ip?: string | null;
  target?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

export type AuditSink = (event: AuditEventInput) => Promise<void>;

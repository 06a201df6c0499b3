// Prometheus metrics (prom-client): a registry per Gatehouse instance so tests and several
// servers in one process do not share counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gatehouse_process_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'gatehouse_http_requests_total',
      help: 'HTTP requests by route group and status class',
      labelNames: ['route', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'gatehouse_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    tokensIssued: new Counter({
      name: 'gatehouse_tokens_issued_total',
      help: 'Successful token endpoint grants by grant type',
      labelNames: ['grant_type'] as const,
      registers: [registry],
    }),
    tokenErrors: new Counter({
      name: 'gatehouse_token_errors_total',
      help: 'Failed token endpoint requests by OAuth error',
      labelNames: ['error'] as const,
      registers: [registry],
    }),
    backchannelLogout: new Counter({
      name: 'gatehouse_backchannel_logout_total',
      help: 'Back-channel logout deliveries by outcome: delivered, retried (an attempt failed), failed (given up), dropped (client gone)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    auditExports: new Counter({
      name: 'gatehouse_audit_exports_total',
      help: 'Audit exports at checkpoints (GATEHOUSE_AUDIT_EXPORT_DIR): written, nothing new, or failed (the checkpoint is recorded all the same)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    auditExportedSeq: new Gauge({
      name: 'gatehouse_audit_exported_seq',
      help: 'Last audit event seq this instance exported with a digest',
      registers: [registry],
    }),
    // The agentserver's notes want alerts on error spikes: rate(…{action="agent.error"}[5m]).
    auditIngested: new Counter({
      name: 'gatehouse_audit_ingested_events_total',
      help: 'Events appended through POST /audit/events by source client, action (custom.* counted as custom) and outcome; repeats not counted',
      labelNames: ['source', 'action', 'outcome'] as const,
      registers: [registry],
    }),
    signingKeys: new Gauge({ name: 'gatehouse_signing_keys_published', help: 'Keys in the published JWKS', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** A bounded label for a path: never the raw path, which would carry uids and grow without end. */
export function routeGroup(path: string): string {
  if (path === '/token') return 'token';
  if (path.startsWith('/interaction/')) return 'interaction';
  if (path.startsWith('/enroll/')) return 'enroll';
  if (path.startsWith('/admin')) return 'admin';
  if (path.startsWith('/account')) return 'account';
  const known = [
    '/jwks',
    '/auth',
    '/me',
    '/token/introspection',
    '/token/revocation',
    '/session/end',
    '/device',
    '/.well-known/openid-configuration',
    '/healthz',
    '/readyz',
    '/metrics',
    '/audit/events',
  ];
  return (
    known.find((k) => path === k || path.startsWith(k + '/'))?.replace(/^\//, '') || (path.startsWith('/static/') ? 'static' : 'other')
  );
}

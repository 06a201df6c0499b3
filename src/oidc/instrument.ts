// What the provider's events feed: token metrics, the refresh-token reuse audit event, and the
// log of its internal errors. Attached to every provider instance (rebuilt when keys change).
import type Provider from 'oidc-provider';
import type { AuditSink } from '../audit/sink.ts';
import type { Metrics } from '../http/metrics.ts';
import type { Logger } from '../log.ts';

export function instrumentProvider(p: Provider, { metrics, audit, log }: { metrics: Metrics; audit: AuditSink; log: Logger }): void {
  p.on('grant.success', (ctx) => metrics.tokensIssued.inc({ grant_type: String(ctx.oidc.params?.grant_type ?? 'unknown') }));
  p.on('grant.error', (ctx, err: any) => {
    metrics.tokenErrors.inc({ error: String(err?.error ?? 'server_error') });
    // RFC 9700 §4.14.2: a rotated refresh token came back; oidc-provider has revoked the grant.
    if (err?.error === 'invalid_grant' && err?.error_detail === 'refresh token already used') {
      const rt = ctx.oidc?.entities?.RefreshToken as any;
      audit({
        action: 'token.refresh_reuse',
        outcome: 'denied',
        actor: rt?.accountId ?? 'anonymous',
        target: rt?.accountId ?? null,
        ip: ctx.ip,
        requestId: String(ctx.res.getHeader('x-request-id') ?? ''),
        details: { client_id: ctx.oidc?.client?.clientId, grant_id: rt?.grantId },
      }).catch((err) => log.error({ err: (err as Error).message }, 'refresh token reuse not audited'));
    }
  });
  p.on('server_error', (ctx, err) => log.error({ err, requestId: ctx.res.getHeader('x-request-id') }, 'oidc-provider server error'));
}

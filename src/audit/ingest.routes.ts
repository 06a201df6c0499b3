// POST /audit/events (docs/architecture.md, "Audit ingestion"): a service appends its own events
// to Gatehouse's hash chain. The bearer token is verified offline, exactly as the agentserver
// verifies Gatehouse's tokens (gatehouse/verify, against the keys this instance publishes), with
// Gatehouse itself as the audience: a token for the agentserver is refused, so a token the
// agentserver received can never be replayed here (no audience confusion). Then: a service
// client's own token, holding audit:append, from its allowed networks, within its budget.
// Errors follow RFC 6750 §3 (WWW-Authenticate) for the token, and name the event at fault for
// the body.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';
import { AUDIT_APPEND } from '../authz/model.ts';
import type { ClientCache } from '../clients/client-cache.ts';
import { ipAllowed } from '../clients/networks.ts';
import { GatehouseError, isGatehouseError } from '../errors.ts';
import type { Metrics } from '../http/metrics.ts';
import type { IngestLimit } from '../http/rate-limits.ts';
import { tooManyRequestsBody } from '../http/rate-limits.ts';
import type { KeySet } from '../keys/keys.service.ts';
import { publicJwks } from '../oidc/jwks.ts';
import { createVerifier, VerifyError, type AccessTokenClaims, type Verifier } from '../verify/index.ts';
import type { AuditQueue } from './audit.service.ts';
import { ingestActionLabel, ingestBatch, INGEST_BATCH_MAX, INGEST_MAX_BODY_BYTES } from './ingest.ts';

export interface IngestDeps {
  issuer: string;
  keys: () => KeySet;
  clients: ClientCache;
  queue: AuditQueue;
  limit: IngestLimit;
  metrics: Metrics;
}

function challenge(ctx: Context, status: 401 | 403, error: string | null, description: string) {
  ctx.status = status;
  // RFC 6750 §3: without a token the challenge names no error; descriptions are fixed ASCII.
  ctx.set(
    'www-authenticate',
    error ? `Bearer realm="gatehouse", error="${error}", error_description="${description}"` : 'Bearer realm="gatehouse"',
  );
  ctx.body = { error: error ?? 'invalid_token', error_description: description };
}

/** The JSON body, up to INGEST_MAX_BODY_BYTES; unparseable or too large is the caller's error, not ours. */
function parseJson() {
  const parse = bodyParser({ enableTypes: ['json'], jsonLimit: INGEST_MAX_BODY_BYTES, encoding: 'utf-8' });
  return async (ctx: Context, next: Next) => {
    let parsed = false;
    try {
      await parse(ctx, async () => {
        parsed = true;
      });
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 413) throw new GatehouseError('PAYLOAD_TOO_LARGE', `request body larger than ${INGEST_MAX_BODY_BYTES} bytes`);
      throw new GatehouseError('VALIDATION', 'the body is not valid JSON: {"events": [ … ]}', { field: 'events' });
    }
    if (parsed) await next();
  };
}

/** The router for /audit/events, mounted before Gatehouse's main router (its body limit is its own). */
export function ingestRoutes(deps: IngestDeps): Router {
  const router = new Router();
  // Offline verification against this instance's published keys, rebuilt when they change.
  let cached: { keys: KeySet; verifier: Verifier } | null = null;
  const verifier = () => {
    const keys = deps.keys();
    if (cached?.keys !== keys) {
      cached = { keys, verifier: createVerifier({ issuer: deps.issuer, audience: deps.issuer, jwks: publicJwks(keys) as any }) };
    }
    return cached.verifier;
  };

  router.post(
    '/audit/events',
    async (ctx, next) => {
      ctx.set('cache-control', 'no-store');
      const header = ctx.get('authorization');
      if (!header) return challenge(ctx, 401, null, 'a bearer token is required');
      const token = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header)?.[1];
      if (!token || token.length > 8192) return challenge(ctx, 401, 'invalid_token', 'malformed bearer token');
      let claims: AccessTokenClaims;
      try {
        claims = await verifier().verify(token);
      } catch (err) {
        if (err instanceof VerifyError && err.code === 'wrong_audience') {
          return challenge(ctx, 401, 'invalid_token', 'the token is not for Gatehouse: request it with resource set to the issuer');
        }
        if (err instanceof VerifyError && (err.code === 'jwks_unavailable' || err.code === 'introspection_unavailable')) throw err;
        return challenge(ctx, 401, 'invalid_token', 'invalid or expired access token');
      }
      // A service's own token: sub is the client itself. A person's token never has the issuer
      // as audience (src/oidc/provider.ts), but if the deployment made the issuer the default
      // audience it might, and it must still not append.
      if (claims.sub !== claims.client_id || claims.acr !== undefined || claims.sid !== undefined) {
        return challenge(ctx, 403, 'insufficient_scope', 'only a service client token may append audit events');
      }
      if (!claims.permissions.includes(AUDIT_APPEND)) {
        return challenge(ctx, 403, 'insufficient_scope', 'the token does not carry the audit:append permission');
      }
      const client = await deps.clients.get(claims.client_id);
      if (!client || client.kind !== 'service') return challenge(ctx, 401, 'invalid_token', 'the client no longer exists');
      if (!client.permissions.includes(AUDIT_APPEND)) {
        return challenge(ctx, 403, 'insufficient_scope', 'the client no longer holds the audit:append permission');
      }
      if (client.allowedCidrs.length > 0 && !ipAllowed(ctx.ip, client.allowedCidrs)) {
        return challenge(ctx, 403, 'insufficient_scope', 'the source address is not in the client allowed networks');
      }
      if (!ctx.is('application/json')) {
        ctx.status = 415;
        ctx.body = { error: 'invalid_request', error_description: 'the body must be application/json: {"events": [ … ]}' };
        return;
      }
      ctx.state.ingestClient = client.clientId;
      await next();
    },
    parseJson(),
    async (ctx) => {
      const source = ctx.state.ingestClient as string;
      const body = ctx.request.body as unknown;
      const count = Array.isArray((body as { events?: unknown })?.events) ? Math.max(1, (body as { events: unknown[] }).events.length) : 1;
      // An oversized batch is refused below; it costs at most a full batch of the budget.
      const wait = await deps.limit(source, Math.min(count, INGEST_BATCH_MAX), ctx.ip, ctx.state.requestId);
      if (wait > 0) {
        ctx.status = 429;
        ctx.set('retry-after', String(wait));
        ctx.body = tooManyRequestsBody(wait);
        return;
      }
      try {
        const r = await ingestBatch(deps.queue, body, { source, requestId: ctx.state.requestId ?? null });
        for (const e of r.appended) deps.metrics.auditIngested.inc({ source, action: ingestActionLabel(e.action), outcome: e.outcome });
        ctx.status = 202;
        ctx.body = { seq: r.seqs };
      } catch (err) {
        // A bad event fails the batch: the answer names it (index and field) for the producer to fix.
        if (isGatehouseError(err) && (err.code === 'VALIDATION' || err.code === 'CONFLICT')) {
          ctx.status = err.status;
          ctx.body = { error: 'invalid_request', error_description: err.message, ...(err.details ?? {}) };
          return;
        }
        throw err;
      }
    },
  );
  // Other methods: 405 here, rather than falling through to oidc-provider's 404.
  router.all('/audit/events', (ctx) => {
    ctx.status = 405;
    ctx.set('allow', 'POST');
    ctx.body = { error: 'invalid_request', error_description: 'POST a JSON body {"events": [ … ]}' };
  });
  return router;
}

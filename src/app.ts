// Assembles one Gatehouse instance: database, keys, oidc-provider, HTTP routes, background jobs.
// main.ts starts it as a server; tests start it on a random port against a fresh database.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import Koa from 'koa';
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { Config } from './config/config.ts';
import { loadMasterKey } from './crypto/master-key.ts';
import { createSealer, type Sealer } from './crypto/seal.ts';
import { openDatabase, type Db } from './db/connect.ts';
import { migrateToLatest } from './db/migrate.ts';
import { ChangeFeed } from './db/change-feed.ts';
import { ClientCache } from './clients/client-cache.ts';
import { assertMasterKeyOpens, ensureKeys, loadKeySet, rotateIfDue, eraseExpiredKeys, type KeyPolicy, type KeySet, type SigningAlg } from './keys/keys.service.ts';
import { buildProvider, MAX_SIGNED_LIFETIME, type ProviderDeps } from './oidc/provider.ts';
import { deleteExpiredPayloads } from './oidc/adapter.ts';
import { createLogger, type Logger } from './log.ts';
import { createMetrics, routeGroup, type Metrics } from './http/metrics.ts';
import { securityHeaders, setApiSecurityHeaders } from './http/security-headers.ts';
import { healthRoutes } from './http/health.ts';
import { jwksRoute } from './oidc/jwks.ts';
import { staticRoutes } from './http/static.ts';
import { errorView } from '../views/error.ts';
import { isGatehouseError, publicMessage } from './errors.ts';
import { bodyParser } from '@koa/bodyparser';
import { createCsrf } from './http/csrf.ts';
import { createBruteForce } from './signin/brute-force.ts';
import { signInRoutes } from './signin/routes.ts';
import { enrollRoutes } from './enroll/routes.ts';
import { accountRoutes, ensureAccountClient } from './account/routes.ts';
import { adminRoutes } from './admin/routes.ts';
import { accountTokenClaimsHook, configurePeople, findAccountHook } from './signin/provider-hooks.ts';
import { deleteExpiredFlows } from './signin/login-flow.ts';
import { relyingPartyFor } from './mfa/webauthn.ts';
import { deriveBackupCodeKey } from './mfa/backup-codes.ts';
import type { AuditSink } from './audit/sink.ts';
import { AuditQueue } from './audit/audit.service.ts';
import { scheduleCheckpoints } from './audit/checkpoint.ts';

export interface Gatehouse {
  config: Config;
  db: Db;
  log: Logger;
  metrics: Metrics;
  sealer: Sealer;
  clients: ClientCache;
  keyPolicy: KeyPolicy;
  /** The provider in force; rebuilt when signing keys change. */
  provider(): Provider;
  keys(): KeySet;
  app: Koa;
  /** Re-read keys and clients now (what the change feed does on every instance). */
  refresh(): Promise<void>;
  listen(): Promise<{ url: string; server: http.Server | https.Server }>;
  close(): Promise<void>;
  /** Hooks for the people and admin domains. */
  router: Router;
  setProviderHooks(hooks: Partial<Pick<ProviderDeps, 'accountTokenClaims' | 'findAccount' | 'configure'>>): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Poll interval of the change feed (ms). */
  pollMs?: number;
  /** Use an already-open database (tests). */
  db?: Db;
  /** Run background jobs (cleanup, automatic key rotation). */
  jobs?: boolean;
}

/** The path as logged: an invitation link's token is a credential and never reaches the log. */
export function loggablePath(path: string): string {
  return path.replace(/^\/enroll\/[^/]+/, '/enroll/:token').slice(0, 200);
}

export async function createGatehouse(config: Config, opts: StartOptions = {}): Promise<Gatehouse> {
  const log = opts.log ?? createLogger(config.logLevel);
  const masterKey = loadMasterKey(config, (msg) => log.warn(msg));
  const sealer = createSealer(masterKey);
  const db = opts.db ?? (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, onIdleError: (err) => log.warn({ err: err.message }, 'idle database connection lost') }));
  try {
    const applied = await migrateToLatest(db);
    if (applied.length) log.info({ migrations: applied }, 'database migrated');
    await assertMasterKeyOpens(db.kysely, sealer);
  } catch (err) {
    await db.close();
    throw err;
  }
  const metrics = createMetrics();
  const clients = new ClientCache(db.kysely);
  const algs: SigningAlg[] = [...new Set<SigningAlg>([config.accessTokenAlg, 'RS256'])];
  const keyPolicy: KeyPolicy = { algs, jwksMaxAgeSeconds: config.jwksMaxAgeSeconds, maxSignedLifetimeSeconds: MAX_SIGNED_LIFETIME };
  await ensureKeys(db.kysely, sealer, keyPolicy);
  await ensureAccountClient(db.kysely, config.issuer);

  // Cookie signing keys derived from the master key, so every instance signs alike.
  const cookieKeys = [crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), 'gatehouse cookie keys v1', 32)].map((k) => Buffer.from(k).toString('base64url'));

  let keySet = await loadKeySet(db.kysely, sealer);
  let hooks: Partial<ProviderDeps> = {
    findAccount: findAccountHook(db.kysely),
    accountTokenClaims: accountTokenClaimsHook(db.kysely),
    configure: configurePeople,
  };
  const makeProvider = () =>
    buildProvider({
      issuer: config.issuer,
      audience: config.audience,
      accessTokenAlg: config.accessTokenAlg,
      keys: keySet,
      db: db.kysely,
      clients,
      cookieKeys,
      trustProxy: config.trustProxy,
      refreshIdleTtl: config.refreshIdleTtl,
      refreshAbsoluteTtl: config.refreshAbsoluteTtl,
      ...hooks,
    });
  let provider = makeProvider();
  let callback = provider.callback();
  metrics.signingKeys.set(keySet.published.length);

  // Audit events that stand alone (sign-ins, rate-limit trips) go through a queue that appends
  // them in batches under one lock; a failure to record is logged, never shown to the person.
  const auditQueue = new AuditQueue(db.kysely);
  const audit: AuditSink = async (event) => {
    try {
      await auditQueue.append(event);
    } catch (err) {
      log.error({ err: (err as Error).message, action: event.action, requestId: event.requestId }, 'audit append failed');
    }
  };
  const instrument = (p: Provider) => {
    p.on('grant.success', (ctx) => metrics.tokensIssued.inc({ grant_type: String(ctx.oidc.params?.grant_type ?? 'unknown') }));
    p.on('grant.error', (ctx, err: any) => {
      metrics.tokenErrors.inc({ error: String(err?.error ?? 'server_error') });
      // RFC 9700 §4.14.2: a rotated refresh token came back; oidc-provider has revoked the grant.
      if (err?.error === 'invalid_grant' && err?.error_detail === 'refresh token already used') {
        const rt = ctx.oidc?.entities?.RefreshToken as any;
        void audit({
          action: 'token.refresh_reuse',
          outcome: 'denied',
          actor: rt?.accountId ?? 'anonymous',
          target: rt?.accountId ?? null,
          ip: ctx.ip,
          requestId: String(ctx.res.getHeader('x-request-id') ?? ''),
          details: { client_id: ctx.oidc?.client?.clientId, grant_id: rt?.grantId },
        });
      }
    });
    p.on('server_error', (ctx, err) => log.error({ err, requestId: ctx.res.getHeader('x-request-id') }, 'oidc-provider server error'));
  };
  instrument(provider);

  const reloadKeys = async () => {
    keySet = await loadKeySet(db.kysely, sealer);
    provider = makeProvider();
    instrument(provider);
    callback = provider.callback();
    metrics.signingKeys.set(keySet.published.length);
    log.info({ current: keySet.currentKid, published: keySet.published.length }, 'signing keys loaded');
  };

  const feed = new ChangeFeed(db.kysely);
  feed.on('change', (topic) => {
    if (topic === 'clients') clients.invalidate();
    if (topic === 'keys') reloadKeys().catch((err) => log.error({ err }, 'reloading signing keys failed'));
  });
  feed.on('error', (err) => log.warn({ err: err.message }, 'change feed poll failed'));
  await feed.poll();
  feed.start(opts.pollMs ?? 1000);

  const app = new Koa({ proxy: config.trustProxy });
  const router = new Router();
  let ready = true;

  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    const requestId = crypto.randomUUID();
    ctx.state.requestId = requestId;
    ctx.res.setHeader('X-Request-Id', requestId);
    try {
      await next();
    } catch (err) {
      const known = isGatehouseError(err);
      if (!known) log.error({ err, requestId }, 'unhandled error');
      ctx.status = known ? err.status : 500;
      ctx.set('cache-control', 'no-store');
      const message = publicMessage(err);
      if (ctx.accepts('html', 'json') === 'html' && !ctx.is('json')) {
        ctx.type = 'html';
        ctx.body = errorView({ title: known ? 'Request refused' : 'Something went wrong', message: known ? message : 'An internal error occurred.', requestId });
      } else {
        ctx.body = { error: known ? err.code.toLowerCase() : 'server_error', error_description: message };
      }
    } finally {
      const route = routeGroup(ctx.path);
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.httpRequests.inc({ route, status: `${Math.floor(status / 100)}xx` });
      metrics.httpDuration.observe({ route }, seconds);
      if (route !== 'token' || status >= 400) {
        // The path only: query strings may carry state, hints or codes.
        log.info({ requestId, method: ctx.method, path: loggablePath(ctx.path), status, ms: Math.round(seconds * 1000), ip: ctx.ip }, 'request');
      }
    }
  });
  app.use(securityHeaders({ https: !!config.tls || config.issuer.startsWith('https:') }));
  app.use(async (ctx, next) => {
    // Refuse oversized bodies before anything reads them (oidc-provider's own limit is 56 KiB).
    const length = Number(ctx.get('content-length') || 0);
    if (length > config.maxBodyBytes) {
      ctx.status = 413;
      ctx.set('cache-control', 'no-store');
      ctx.body = { error: 'invalid_request', error_description: `request body larger than ${config.maxBodyBytes} bytes` };
      return;
    }
    await next();
  });

  const isHttps = !!config.tls || config.issuer.startsWith('https:');
  const derive = (label: string) => Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), label, 32));
  const csrf = createCsrf({ key: derive('gatehouse csrf v1'), secure: isHttps, origin: new URL(config.issuer).origin });
  router.use(bodyParser({ enableTypes: ['form', 'json'], formLimit: String(config.maxBodyBytes), jsonLimit: '64kb', encoding: 'utf-8' }));
  healthRoutes(router, { db, ready: () => ready && keySet.signing.length > 0, metrics });
  const rp = relyingPartyFor(config.issuer);
  const backupCodeKey = deriveBackupCodeKey(masterKey);
  signInRoutes(router, { db: db.kysely, provider: () => provider, csrf, bruteForce: createBruteForce(db), rp, sealer, backupCodeKey, audit });
  enrollRoutes(router, { db: db.kysely, csrf, sealer, rp, backupCodeKey, audit, afterEnrollment: '/account' });
  accountRoutes(router, { db: db.kysely, provider: () => provider, issuer: config.issuer, csrf, sealer, rp, backupCodeKey, audit });
  await adminRoutes(router, { db: db.kysely, csrf, sealer, issuer: config.issuer, secure: isHttps, publishedKeys: () => keySet.published, keyPolicy, clients, log });
  jwksRoute(router, { keys: () => keySet, maxAgeSeconds: config.jwksMaxAgeSeconds });
  staticRoutes(router);
  app.use(router.routes());
  app.use(router.allowedMethods());
  // Everything else is oidc-provider's: discovery, /auth, /token, /me, introspection, revocation, logout.
  app.use(async (ctx) => {
    ctx.respond = false;
    await callback(ctx.req, ctx.res);
  });

  const timers: NodeJS.Timeout[] = [];
  let checkpoints: { stop(): Promise<void> } | null = null;
  if (opts.jobs !== false) {
    checkpoints = scheduleCheckpoints({ db: db.kysely, sealer, intervalMs: 5 * 60_000, onError: (err) => log.warn({ err: (err as Error).message }, 'audit checkpoint failed') });
    const every = (ms: number, name: string, fn: () => Promise<unknown>) => {
      timers.push(setInterval(() => fn().catch((err) => log.warn({ err: (err as Error).message, job: name }, 'background job failed')), ms).unref());
    };
    every(10 * 60_000, 'cleanup', async () => {
      const n = await deleteExpiredPayloads(db.kysely);
      const k = await eraseExpiredKeys(db.kysely, new Date());
      const f = await deleteExpiredFlows(db.kysely);
      await db.kysely.deleteFrom('webauthn_challenge').where('expires_at', '<', new Date()).execute();
      await db.kysely.deleteFrom('enrollment').where('expires_at', '<', new Date()).execute();
      await db.kysely.deleteFrom('rate_limit' as any).where('expire' as any, '<', Date.now()).execute();
      if (n || k || f) log.info({ payloads: n, keys: k, flows: f }, 'expired rows deleted');
    });
    every(60_000, 'key-rotation', async () => {
      const rotated = await rotateIfDue(db.kysely, sealer, keyPolicy, config.keyRotationSeconds);
      if (rotated.length) {
        log.info({ rotated }, 'signing keys rotated automatically');
        await audit({ action: 'key.rotate', outcome: 'success', actor: 'system', details: { automatic: true, rotated } });
      }
    });
  }

  let server: http.Server | https.Server | null = null;
  const sockets = new Set<import('node:net').Socket>();

  const gatehouse: Gatehouse = {
    config,
    db,
    log,
    metrics,
    sealer,
    clients,
    keyPolicy,
    app,
    router,
    provider: () => provider,
    keys: () => keySet,
    async refresh() {
      clients.invalidate();
      await reloadKeys();
    },
    async setProviderHooks(h) {
      hooks = { ...hooks, ...h };
      provider = makeProvider();
      instrument(provider);
      callback = provider.callback();
    },
    async listen() {
      const koaHandler = app.callback();
      // The token endpoint is the hot path (every service, every 15 minutes, per instance):
      // it goes straight to oidc-provider with the same headers, request id, size limit and
      // metrics, without a second Koa context and router pass.
      const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
        if (req.method !== 'POST' || req.url !== '/token') return koaHandler(req, res);
        const started = process.hrtime.bigint();
        const requestId = crypto.randomUUID();
        res.setHeader('X-Request-Id', requestId);
        setApiSecurityHeaders(res, isHttps);
        res.once('finish', () => {
          const status = res.statusCode;
          metrics.httpRequests.inc({ route: 'token', status: `${Math.floor(status / 100)}xx` });
          metrics.httpDuration.observe({ route: 'token' }, Number(process.hrtime.bigint() - started) / 1e9);
          if (status >= 400) log.info({ requestId, method: 'POST', path: '/token', status }, 'request');
        });
        if (Number(req.headers['content-length'] || 0) > config.maxBodyBytes) {
          res.writeHead(413, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
          res.end(JSON.stringify({ error: 'invalid_request', error_description: `request body larger than ${config.maxBodyBytes} bytes` }));
          return;
        }
        callback(req, res);
      };
      if (config.tls) {
        server = https.createServer(
          {
            cert: fs.readFileSync(config.tls.certFile),
            key: fs.readFileSync(config.tls.keyFile),
            ...(config.tls.caFile ? { ca: fs.readFileSync(config.tls.caFile) } : {}),
            minVersion: 'TLSv1.3',
            // Ask for a client certificate (tls_client_auth) without requiring one.
            requestCert: true,
            rejectUnauthorized: false,
          },
          handler,
        );
      } else {
        server = http.createServer(handler);
      }
      server.headersTimeout = 20_000;
      server.requestTimeout = 30_000;
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.port, config.host, () => resolve());
      });
      const address = server.address() as import('node:net').AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return { url: `${config.tls ? 'https' : 'http'}://${host}:${address.port}`, server };
    },
    async close() {
      ready = false; // load balancers stop sending traffic
      feed.stop();
      for (const t of timers) clearInterval(t);
      await checkpoints?.stop();
      if (server) {
        const closing = new Promise<void>((resolve) => server!.close(() => resolve()));
        server.closeIdleConnections?.();
        // In-flight requests get a moment to finish; then remaining sockets are cut.
        const forced = setTimeout(() => sockets.forEach((s) => s.destroy()), 5000);
        await closing;
        clearTimeout(forced);
      }
      await auditQueue.flush();
      await db.close();
    },
  };
  return gatehouse;
}

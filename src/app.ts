// Assembles one Gatehouse instance: database, keys, oidc-provider, HTTP routes, background jobs.
// main.ts starts it as a server; tests start it on a random port against a fresh database.
import http from 'node:http';
import https from 'node:https';
import Koa from 'koa';
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { Config } from './config/config.ts';
import { loadMasterKey } from './crypto/master-key.ts';
import { deriveKey } from './crypto/derive-key.ts';
import { createSealer, type Sealer } from './crypto/seal.ts';
import { openDatabase, type Connection } from './db/connect.ts';
import { migrateToLatest } from './db/migrate.ts';
import { ChangeFeed } from './db/change-feed.ts';
import { ClientCache } from './clients/client-cache.ts';
import { ensureKeys, loadKeySet, type KeyPolicy, type KeySet, type SigningAlg } from './keys/keys.service.ts';
import { buildProvider } from './oidc/provider.ts';
import { DPOP_NONCE_KEY_LABEL } from './oidc/dpop.ts';
import { MAX_SIGNED_LIFETIME } from './oidc/lifetimes.ts';
import { createLogger, type Logger } from './log.ts';
import { createMetrics, type Metrics } from './http/metrics.ts';
import { securityHeaders } from './http/security-headers.ts';
import { bodyLimit, requestMiddleware } from './http/request.ts';
import { listen, withTokenFastPath, type Listening } from './http/server.ts';
import { writeBackup, type BackupSummary } from './backup/backup.ts';
import { appendAudit } from './audit/audit.service.ts';
import { assertClientCertificateTrust } from './http/client-cert-trust.ts';
import { healthRoutes } from './http/health.ts';
import { jwksRoute } from './oidc/jwks.ts';
import { accessTokenChecker } from './oidc/access-token.ts';
import { userinfoRoutes } from './oidc/userinfo.ts';
import { postRequestRoutes } from './oidc/post-requests.ts';
import { instrumentProvider } from './oidc/instrument.ts';
import { answerDatabaseOutages } from './oidc/unavailable.ts';
import { staticRoutes } from './http/static.ts';
import { bodyParser } from '@koa/bodyparser';
import { createCsrf } from './http/csrf.ts';
import { createBruteForce } from './signin/brute-force.ts';
import { createDeviceCookies } from './signin/device-cookie.ts';
import { signInRoutes } from './signin/routes.ts';
import { enrollRoutes } from './enroll/routes.ts';
import { accountRoutes } from './self-service/routes.ts';
import { ensureAccountClient } from './self-service/account-client.ts';
import { selfService } from './self-service/self-service.ts';
import { signInService } from './signin/signin.service.ts';
import { enrollmentService } from './accounts/enrollment.ts';
import { secondFactors } from './mfa/registry.ts';
import { adminRoutes } from './admin/routes.ts';
import { relyingPartyFor } from './mfa/webauthn.ts';
import { assertMasterKey, backupCodeKey } from './keys/master-key.ts';
import type { AuditSink } from './audit/sink.ts';
import { AuditQueue } from './audit/audit.service.ts';
import { startBackgroundJobs } from './jobs/background.ts';
import { assertExportDir } from './audit/export.ts';
import { createIngestLimit, createRateLimits } from './http/rate-limits.ts';
import { ingestRoutes } from './audit/ingest.routes.ts';
import { INGEST_MAX_BODY_BYTES } from './audit/ingest.ts';
import { addressLimits } from './http/address-limits.ts';
import { auditCapacity } from './http/audit-capacity.ts';
import { attachRateLimits, tokenRequestLimit } from './oidc/rate-limit-hooks.ts';
import { ClientAuthFailures } from './audit/client-auth-failures.ts';
import { isGatehouseError } from './errors.ts';
import { attachDevicePolling, devicePollLimiter } from './oidc/device-flow.ts';
import {
  createBackchannelLogout,
  sendLogoutsThroughOutbox,
  type BackchannelLogout,
  type BackchannelLogoutOptions,
} from './oidc/backchannel-logout.ts';

export interface Gatehouse {
  config: Config;
  db: Connection;
  log: Logger;
  metrics: Metrics;
  sealer: Sealer;
  clients: ClientCache;
  keyPolicy: KeyPolicy;
  /** The provider in force; rebuilt when signing keys change. */
  provider(): Provider;
  keys(): KeySet;
  app: Koa;
  /** Events waiting to be appended (bounded: see AuditQueue). */
  auditQueue: AuditQueue;
  /** Client-authentication failures not yet audited (flushed every minute and at close). */
  authFailures: ClientAuthFailures;
  /** Delivers logout tokens from the outbox (src/oidc/backchannel-logout.ts). */
  backchannelLogout: BackchannelLogout;
  /**
   * Before close() on SIGTERM: /readyz answers 503 for `config.drainSeconds` while every request
   * is still served, so load balancers take the instance out before its listener closes.
   */
  drain(): Promise<void>;
  /** Re-read keys and clients now (what the change feed does on every instance). */
  refresh(): Promise<void>;
  listen(): Promise<{ url: string; server: http.Server | https.Server }>;
  /** Re-read GATEHOUSE_TLS_CERT_FILE/KEY_FILE now (SIGHUP); a bad pair keeps the certificate in use. */
  reloadTls(): boolean;
  /** Write a backup of this instance's database (src/backup/; SIGUSR2 on the embedded database). */
  backup(out: string): Promise<BackupSummary>;
  close(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Poll interval of the change feed (ms). */
  pollMs?: number;
  /** Use an already-open database (tests). */
  db?: Connection;
  /** Run background jobs (cleanup, automatic key rotation). */
  jobs?: boolean;
  /** Bound of the audit queue (tests make it small). */
  auditQueueMax?: number;
  /** Retry delays and timeout of back-channel logout deliveries (tests make them short). */
  backchannelLogout?: BackchannelLogoutOptions;
}

export async function createGatehouse(config: Config, opts: StartOptions = {}): Promise<Gatehouse> {
  const log = opts.log ?? createLogger(config.logLevel);
  if (config.auditExportDir) await assertExportDir(config.auditExportDir);
  const masterKey = loadMasterKey(config, (msg) => log.warn(msg));
  const sealer = createSealer(masterKey);
  // On PostgreSQL, migrations run first on a connection of their own, without the serving pool's
  // time limits: a long migration, or waiting for another instance's, must not time out.
  if (!opts.db && config.databaseUrl) {
    const migrating = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
    try {
      const applied = await migrateToLatest(migrating);
      if (applied.length) log.info({ migrations: applied }, 'database migrated');
    } finally {
      await migrating.close();
    }
  }
  const db =
    opts.db ??
    (await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      bounded: true,
      onIdleError: (err) => log.warn({ err: err.message }, 'database connection lost'),
    }));
  try {
    const applied = await migrateToLatest(db);
    if (applied.length) log.info({ migrations: applied }, 'database migrated');
    await assertMasterKey(db.kysely, sealer, masterKey);
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
  const cookieKeys = [deriveKey(masterKey, 'gatehouse cookie keys v1').toString('base64url')];

  // Audit events that stand alone (sign-ins, rate-limit trips) go through a queue that appends
  // them in batches under one lock; a failure to record is logged, never shown to the person,
  // except a full queue, which answers 503.
  const auditQueue = new AuditQueue(db.kysely, { maxPending: opts.auditQueueMax });
  const audit: AuditSink = async (event) => {
    try {
      await auditQueue.append(event);
    } catch (err) {
      // A full queue refuses the request that needed the event (503); any other failure is logged.
      if (isGatehouseError(err) && err.code === 'UNAVAILABLE') throw err;
      log.error({ err: (err as Error).message, action: event.action, requestId: event.requestId }, 'audit append failed');
    }
  };
  const limits = createRateLimits({ db, audit, log });
  const limitTokenRequest = tokenRequestLimit(limits);
  const authFailures = new ClientAuthFailures(audit, log);
  authFailures.start();

  let keySet = await loadKeySet(db.kysely, sealer);
  // DPoP-Nonce values from one instance must pass at every other one (src/oidc/dpop.ts).
  const dpopNonceSecret = deriveKey(masterKey, DPOP_NONCE_KEY_LABEL);
  const devicePolls = devicePollLimiter(db);
  const logouts = createBackchannelLogout({
    db: db.kysely,
    clients,
    issuer: config.issuer,
    keys: () => keySet,
    log,
    metrics,
    ...opts.backchannelLogout,
  });
  const makeProvider = () =>
    withOutageAnswers({
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
      session: { idleTtl: config.sessionIdleTtl, maxTtl: config.sessionMaxTtl },
      limitTokenRequest,
      dpop: { nonceSecret: dpopNonceSecret, requireNonce: config.dpopRequireNonce },
      delegation: { maxTtl: config.delegationTtl, maxDepth: config.delegationMaxDepth },
      audit,
      deviceFlow: {
        onWrongUserCode: (ctx) => limits.addressFailed(ctx.ip, 'device', String(ctx.res.getHeader('x-request-id') ?? '') || null),
      },
    });
  function withOutageAnswers(deps: Parameters<typeof buildProvider>[0]): Provider {
    const p = buildProvider(deps);
    answerDatabaseOutages(p);
    attachDevicePolling(p, devicePolls);
    sendLogoutsThroughOutbox(p, { db: db.kysely, kick: () => logouts.kick() });
    return p;
  }
  let provider = makeProvider();
  let callback = provider.callback();
  metrics.signingKeys.set(keySet.published.length);

  const instrument = (p: Provider) => {
    instrumentProvider(p, { metrics, audit, log });
    attachRateLimits(p, { limits, clients, authFailures });
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

  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: 1 }); // see src/oidc/provider.ts
  const router = new Router();
  let ready = true;
  let draining = false;

  const isHttps = !!config.tls || config.issuer.startsWith('https:');
  app.use(requestMiddleware({ log, metrics }));
  app.use(securityHeaders({ https: isHttps }));
  app.use(bodyLimit(config.maxBodyBytes, { '/audit/events': INGEST_MAX_BODY_BYTES }));
  app.use(addressLimits(limits));
  app.use(auditCapacity(auditQueue));

  const csrf = createCsrf({ key: deriveKey(masterKey, 'gatehouse csrf v1'), secure: isHttps, origin: new URL(config.issuer).origin });
  router.use(bodyParser({ enableTypes: ['form', 'json'], formLimit: String(config.maxBodyBytes), jsonLimit: '64kb', encoding: 'utf-8' }));
  healthRoutes(router, {
    db,
    ready: () => ready && keySet.signing.length > 0,
    draining: () => draining,
    metrics,
    metricsToken: config.metricsToken,
  });
  // The second factors, built once: every flow that enrolls, checks or removes one gets this registry.
  const factors = secondFactors({
    sealer,
    rp: relyingPartyFor(config.issuer),
    backupCodeKey: await backupCodeKey(db.kysely, sealer, masterKey),
  });
  signInRoutes(router, {
    signIn: signInService(db.kysely, factors),
    provider: () => provider,
    csrf,
    bruteForce: createBruteForce(db, { ipWindowSeconds: config.signinIpWindow }),
    deviceCookies: createDeviceCookies({ key: deriveKey(masterKey, 'gatehouse device cookie v1'), secure: isHttps }),
    audit,
  });
  enrollRoutes(router, { enrollment: enrollmentService(db.kysely, factors), csrf, audit, afterEnrollment: '/account' });
  accountRoutes(router, { selfService: selfService(db.kysely, factors), provider: () => provider, issuer: config.issuer, csrf, audit });
  await adminRoutes(router, {
    db: db.kysely,
    csrf,
    sealer,
    issuer: config.issuer,
    secure: isHttps,
    publishedKeys: () => keySet.published,
    keyPolicy,
    clients,
    log,
  });
  jwksRoute(router, { keys: () => keySet, maxAgeSeconds: config.jwksMaxAgeSeconds });
  userinfoRoutes(router, {
    check: accessTokenChecker({ issuer: config.issuer, audience: config.audience, keys: () => keySet, db: db.kysely, clients }),
  });
  postRequestRoutes(router);
  staticRoutes(router);
  // POST /audit/events: other services' events into the chain, through the same bounded queue.
  const ingest = ingestRoutes({
    issuer: config.issuer,
    keys: () => keySet,
    clients,
    queue: auditQueue,
    limit: createIngestLimit({ db, audit, log, eventsPerMinute: config.auditIngestLimit }),
    metrics,
  });
  app.use(ingest.routes());
  app.use(router.routes());
  app.use(router.allowedMethods());
  // Everything else is oidc-provider's: discovery, /auth, /token, /me, introspection, revocation, logout.
  app.use(async (ctx) => {
    ctx.respond = false;
    await callback(ctx.req, ctx.res);
  });

  // The feed's baseline is read only now, after the built-in clients were registered above
  // (adminRoutes): read earlier, their version bump would empty every instance's client cache one
  // poll after start, and a service whose client was just cached would need the database again.
  await feed.poll();
  feed.start(opts.pollMs ?? 1000);
  logouts.start();

  const jobs =
    opts.jobs !== false
      ? startBackgroundJobs({
          db: db.kysely,
          sealer,
          keyPolicy,
          keyRotationSeconds: config.keyRotationSeconds,
          audit,
          log,
          auditExportDir: config.auditExportDir,
          metrics,
        })
      : null;

  let listening: Listening | null = null;

  const gatehouse: Gatehouse = {
    config,
    db,
    log,
    metrics,
    sealer,
    clients,
    keyPolicy,
    app,
    auditQueue,
    authFailures,
    backchannelLogout: logouts,
    provider: () => provider,
    keys: () => keySet,
    async drain() {
      draining = true;
      await new Promise((resolve) => setTimeout(resolve, config.drainSeconds * 1000));
    },
    async refresh() {
      clients.invalidate();
      await reloadKeys();
    },
    async listen() {
      const handler = withTokenFastPath({ config, log, metrics, https: isHttps, limits }, app.callback(), () => callback);
      await assertClientCertificateTrust(config, db.kysely);
      listening = await listen(config, handler, log);
      return { url: listening.url, server: listening.server };
    },
    reloadTls() {
      return listening?.reloadTls() ?? false;
    },
    async backup(out) {
      await appendAudit(db.kysely, { action: 'backup.create', outcome: 'success', actor: 'system', target: null, details: { file: out } });
      return writeBackup(db.kysely, { masterKey, out, dialect: db.dialect });
    },
    async close() {
      ready = false; // load balancers stop sending traffic
      feed.stop();
      await jobs?.stop();
      await logouts.stop();
      await listening?.close();
      await authFailures.stop();
      await auditQueue.flush();
      await db.close();
    },
  };
  return gatehouse;
}

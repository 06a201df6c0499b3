// The listening socket: HTTP, or HTTPS with TLS 1.3 only when a certificate is configured (and
// client certificates requested for tls_client_auth); graceful close on shutdown (./graceful-close.ts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from './metrics.ts';
import { GracefulClose } from './graceful-close.ts';
import { observe, refuseLargeBody } from './request.ts';
import { answerMalformedRequests } from './client-error.ts';
import { setApiSecurityHeaders } from './security-headers.ts';
import { answerTooManyRequests, type RateLimits } from './rate-limits.ts';
import { requestIp } from './address-limits.ts';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * The token endpoint is the hot path (every service, every 15 minutes, per instance): it goes
 * straight to oidc-provider with the same headers, request id, size limit, metrics and log line,
 * without a second Koa context and router pass. The per-address limit is checked here too (from
 * memory: no query); the per-client limit applies inside oidc-provider, as on the Koa path.
 */
export function withTokenFastPath(
  deps: { config: Config; log: Logger; metrics: Metrics; https: boolean; limits: RateLimits },
  koa: Handler,
  provider: () => Handler,
): Handler {
  return (req, res) => {
    if (req.method !== 'POST' || req.url !== '/token') return koa(req, res);
    const started = process.hrtime.bigint();
    const requestId = crypto.randomUUID();
    res.setHeader('X-Request-Id', requestId);
    setApiSecurityHeaders(res, deps.https);
    const ip = requestIp(req, deps.config.trustProxy);
    res.once('finish', () => observe(deps, { requestId, method: 'POST', path: '/token', status: res.statusCode, started, ip }));
    if (refuseLargeBody(req.headers['content-length'], deps.config.maxBodyBytes, res)) return;
    const wait = deps.limits.addressWait(ip);
    if (wait) return answerTooManyRequests(res, wait);
    provider()(req, res);
  };
}

export interface Listening {
  url: string;
  server: http.Server | https.Server;
  /** Re-read the certificate and key files; false (and the old pair kept) when they do not load. */
  reloadTls(): boolean;
  close(): Promise<void>;
}

/** How long file events settle before a reload: a renewal writes the certificate and the key one after the other. */
const TLS_RELOAD_DEBOUNCE_MS = 300;

/**
 * A renewed certificate without a restart (docs/architecture.md, "Transport and headers"): the
 * directories of GATEHOUSE_TLS_CERT_FILE and _KEY_FILE are watched (any event there, so that
 * symlink swaps as certbot and Kubernetes secrets do them count), and SIGHUP calls `reload()`
 * too (src/main.ts). A pair whose bytes changed is loaded into a new secure context for the next
 * connections; a pair that does not load (half written, key and certificate not matching) is
 * logged and the context in use is kept.
 */
function tlsReloader(server: https.Server, tls: NonNullable<Config['tls']>, initial: { cert: Buffer; key: Buffer }, log?: Logger) {
  const read = () => ({ cert: fs.readFileSync(tls.certFile), key: fs.readFileSync(tls.keyFile) });
  const digest = (p: { cert: Buffer; key: Buffer }) => crypto.createHash('sha256').update(p.cert).update('\0').update(p.key).digest('hex');
  let loaded = digest(initial);
  let lastFailed: string | null = null;
  const reload = (): boolean => {
    let pair: { cert: Buffer; key: Buffer };
    try {
      pair = read();
    } catch (err) {
      log?.error({ err: (err as Error).message }, 'TLS certificate reload failed: cannot read the files; keeping the certificate in use');
      return false;
    }
    const d = digest(pair);
    if (d === loaded) return true;
    try {
      server.setSecureContext({ ...pair, ...(tls.caFile ? { ca: fs.readFileSync(tls.caFile) } : {}), minVersion: 'TLSv1.3' });
    } catch (err) {
      if (lastFailed !== d) log?.error({ err: (err as Error).message }, 'TLS certificate reload failed; keeping the certificate in use');
      lastFailed = d;
      return false;
    }
    loaded = d;
    lastFailed = null;
    const x509 = new crypto.X509Certificate(pair.cert);
    log?.info({ fingerprint256: x509.fingerprint256, validTo: x509.validTo, subject: x509.subject }, 'TLS certificate reloaded');
    return true;
  };
  let timer: NodeJS.Timeout | undefined;
  const watchers = [...new Set([path.dirname(path.resolve(tls.certFile)), path.dirname(path.resolve(tls.keyFile))])].map((dir) =>
    fs.watch(dir, () => {
      clearTimeout(timer);
      timer = setTimeout(reload, TLS_RELOAD_DEBOUNCE_MS);
    }),
  );
  for (const w of watchers) w.on('error', (err) => log?.warn({ err: err.message }, 'watching the TLS certificate directory failed'));
  return {
    reload,
    stop() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

export async function listen(config: Config, handler: Handler, log?: Logger): Promise<Listening> {
  const graceful = new GracefulClose();
  const initial = config.tls ? { cert: fs.readFileSync(config.tls.certFile), key: fs.readFileSync(config.tls.keyFile) } : null;
  const server = config.tls
    ? https.createServer(
        {
          ...initial!,
          ...(config.tls.caFile ? { ca: fs.readFileSync(config.tls.caFile) } : {}),
          minVersion: 'TLSv1.3',
          // Ask for a client certificate (tls_client_auth) without requiring one, and only when a CA
          // of our own is configured: never chain client certificates to public roots.
          requestCert: !!config.tls.caFile,
          rejectUnauthorized: false,
        },
        graceful.wrap(handler),
      )
    : http.createServer(graceful.wrap(handler));
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  graceful.attach(server);
  answerMalformedRequests(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const reloader = config.tls ? tlsReloader(server as https.Server, config.tls, initial!, log) : null;
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `${config.tls ? 'https' : 'http'}://${host}:${address.port}`,
    server,
    reloadTls: () => reloader?.reload() ?? false,
    // In-flight requests get a moment to finish; then remaining sockets are cut.
    close: () => {
      reloader?.stop();
      return graceful.close(server, 5000);
    },
  };
}

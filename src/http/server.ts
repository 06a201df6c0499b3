// The listening socket: HTTP, or HTTPS with TLS 1.3 only when a certificate is configured (and
// client certificates requested for tls_client_auth); graceful close on shutdown (./graceful-close.ts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
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
  close(): Promise<void>;
}

export async function listen(config: Config, handler: Handler): Promise<Listening> {
  const graceful = new GracefulClose();
  const server = config.tls
    ? https.createServer(
        {
          cert: fs.readFileSync(config.tls.certFile),
          key: fs.readFileSync(config.tls.keyFile),
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
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `${config.tls ? 'https' : 'http'}://${host}:${address.port}`,
    server,
    // In-flight requests get a moment to finish; then remaining sockets are cut.
    close: () => graceful.close(server, 5000),
  };
}

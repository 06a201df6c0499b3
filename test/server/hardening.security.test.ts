// Smaller doors an attacker tries first: /metrics read from outside, powerful browser features on
// Gatehouse's pages, and client certificates chained to public roots (issue 7, point 8).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatehouse } from '../../src/app.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/log.ts';
import { BACKENDS, freshDb } from '../helpers/db.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

/** This host's first non-loopback IPv4 address, to reach the server as a remote client would. */
function externalAddress(): string | null {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

describe('/metrics without GATEHOUSE_METRICS_TOKEN: loopback only', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('pglite', { HOST: '0.0.0.0' });
  });
  afterAll(() => s?.close());

  it('answers a direct loopback client', async () => {
    const res = await fetch(`${s.url}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('gatehouse_http_requests_total');
  });

  it('refuses a request forwarded by a proxy on this host, whatever X-Forwarded-For says', async () => {
    for (const headers of [{ 'x-forwarded-for': '127.0.0.1' }, { forwarded: 'for=127.0.0.1' }]) {
      const res = await fetch(`${s.url}/metrics`, { headers });
      expect(res.status).toBe(403);
      expect(await res.text()).not.toContain('gatehouse_');
    }
  });

  it('refuses a client on another address', async (t) => {
    const ip = externalAddress();
    if (!ip) t.skip();
    const res = await fetch(`http://${ip}:${new URL(s.url).port}/metrics`, { headers: { 'x-forwarded-for': '127.0.0.1' } });
    expect(res.status).toBe(403);
    const bare = await fetch(`http://${ip}:${new URL(s.url).port}/metrics`);
    expect(bare.status).toBe(403);
    expect(await bare.text()).not.toContain('gatehouse_');
  });
});

describe('/metrics with GATEHOUSE_METRICS_TOKEN', () => {
  const token = crypto.randomBytes(32).toString('base64url');
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('pglite', { GATEHOUSE_METRICS_TOKEN: token });
  });
  afterAll(() => s?.close());

  it('needs the bearer token, even from loopback', async () => {
    const none = await fetch(`${s.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${token.slice(0, -1)}x` } })).status).toBe(401);
    expect((await fetch(`${s.url}/metrics`, { headers: { authorization: `Basic ${token}` } })).status).toBe(401);
    const ok = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('gatehouse_http_requests_total');
  });

  it('refuses a short token at configuration', () => {
    expect(() => loadConfig({ GATEHOUSE_METRICS_TOKEN: 'short' })).toThrow(/GATEHOUSE_METRICS_TOKEN/);
  });
});

describe('Permissions-Policy on HTML pages', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('pglite');
  });
  afterAll(() => s?.close());

  it('denies camera, microphone, geolocation, payment and usb, and keeps WebAuthn for Gatehouse itself', async () => {
    const res = await fetch(`${s.url}/enroll/not-a-real-link`);
    expect(res.headers.get('content-type')).toMatch(/html/);
    const policy = res.headers.get('permissions-policy') ?? '';
    for (const feature of ['camera', 'microphone', 'geolocation', 'payment', 'usb']) expect(policy).toContain(`${feature}=()`);
    expect(policy).toContain('publickey-credentials-get=(self)');
    expect(policy).toContain('publickey-credentials-create=(self)');
  });
});

describe.each(BACKENDS)('tls_client_auth without GATEHOUSE_TLS_CA_FILE (%s)', (backend) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-noca-'));
  const file = (n: string) => path.join(dir, n);
  beforeAll(() => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'server.key',
        '-out',
        'server.crt',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { cwd: dir, stdio: 'pipe' },
    );
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function tlsEnv() {
    const port = await freePort();
    return {
      PORT: String(port),
      GATEHOUSE_ISSUER: `https://localhost:${port}`,
      GATEHOUSE_TLS_CERT_FILE: file('server.crt'),
      GATEHOUSE_TLS_KEY_FILE: file('server.key'),
    };
  }

  it('refuses to start while a client authenticates with a certificate', async () => {
    const testDb = await freshDb(backend);
    await createClient(testDb.db.kysely, {
      name: 'mtls',
      grants: ['client_credentials'],
      auth: 'tls_client_auth',
      tlsSubjectDn: 'CN=svc.internal',
      roles: ['viewer'],
    });
    const config = loadConfig({
      ...(await tlsEnv()),
      GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
      ...(testDb.url ? { DATABASE_URL: testDb.url } : {}),
    });
    const gatehouse = await createGatehouse(config, { db: testDb.db, log: createLogger('silent') });
    try {
      await expect(gatehouse.listen()).rejects.toThrow(/GATEHOUSE_TLS_CA_FILE.*tls_client_auth/);
    } finally {
      await gatehouse.close();
      if (testDb.url) await testDb.drop();
    }
  });

  it('starts without such clients, and names the CSRF cookie __Host- on HTTPS', async () => {
    const s = await startServer(backend, await tlsEnv());
    try {
      const app = await createClient(s.gatehouse.db.kysely, {
        name: 'app',
        grants: ['authorization_code'],
        redirectUris: ['https://app.example.com/cb'],
      });
      const get = (url: string, cookie = '') =>
        new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
          const req = https.get(url, { ca: fs.readFileSync(file('server.crt')), agent: false, headers: { cookie } }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
          });
          req.on('error', reject);
        });
      const q = new URLSearchParams({
        client_id: app.client_id,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: 'https://app.example.com/cb',
        code_challenge: crypto.createHash('sha256').update('v'.repeat(43)).digest('base64url'),
        code_challenge_method: 'S256',
      });
      const auth = await get(`${s.url}/auth?${q}`);
      const cookies = ([] as string[])
        .concat(auth.headers['set-cookie'] ?? [])
        .map((c) => c.split(';')[0])
        .join('; ');
      const page = await get(new URL(String(auth.headers.location), s.url).href, cookies);
      expect(page.status).toBe(200);
      const csrfCookie = ([] as string[]).concat(page.headers['set-cookie'] ?? []).find((c) => /gh_csrf=/.test(c))!;
      expect(csrfCookie).toMatch(/^__Host-gh_csrf=/);
      expect(csrfCookie).toMatch(/;\s*path=\/(;|$)/i);
      expect(csrfCookie).toMatch(/;\s*secure/i);
      expect(csrfCookie).not.toMatch(/domain=/i);
    } finally {
      await s.close();
    }
  });
});

// A renewed certificate is served without a restart: the certificate and key files are watched,
// and SIGHUP reloads them; a pair that does not load keeps the certificate in use.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase } from '../helpers/db.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-tls-'));
const file = (...n: string[]) => path.join(dir, ...n);

function makeCert(name: string): { cert: string; key: string; fingerprint: string } {
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
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=localhost/O=${name}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { cwd: dir, stdio: 'pipe' },
  );
  const cert = fs.readFileSync(file(`${name}.crt`), 'utf8');
  return { cert, key: fs.readFileSync(file(`${name}.key`), 'utf8'), fingerprint: new crypto.X509Certificate(cert).fingerprint256 };
}

/** Replace a file the way renewal tools do: write beside it, then rename over it. */
function replace(target: string, content: string): void {
  const tmp = `${target}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  fs.renameSync(tmp, target);
}

/** The fingerprint of the certificate a new TLS connection is given. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

async function eventually(port: number, fingerprint: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await presented(port)) === fingerprint) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(await presented(port)).toBe(fingerprint);
}

let a: ReturnType<typeof makeCert>;
let b: ReturnType<typeof makeCert>;
let c: ReturnType<typeof makeCert>;
beforeAll(() => {
  a = makeCert('a');
  b = makeCert('b');
  c = makeCert('c');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TLS certificate reload', () => {
  let s: TestServer;
  let port: number;
  afterAll(() => s?.close());

  it('serves a renewed certificate on the next connection once the files change', async () => {
    fs.mkdirSync(file('live'));
    fs.writeFileSync(file('live', 'server.crt'), a.cert);
    fs.writeFileSync(file('live', 'server.key'), a.key, { mode: 0o600 });
    port = await freePort();
    s = await startServer('postgres', {
      PORT: String(port),
      GATEHOUSE_ISSUER: `https://localhost:${port}`,
      GATEHOUSE_TLS_CERT_FILE: file('live', 'server.crt'),
      GATEHOUSE_TLS_KEY_FILE: file('live', 'server.key'),
    });
    expect(await presented(port)).toBe(a.fingerprint);
    replace(file('live', 'server.key'), b.key);
    replace(file('live', 'server.crt'), b.cert);
    await eventually(port, b.fingerprint);
    expect(s.logs.join('')).toContain('TLS certificate reloaded');
  }, 300_000);

  it('keeps the certificate in use when the new files do not load, and says why', async () => {
    replace(file('live', 'server.crt'), 'not a certificate');
    for (let i = 0; i < 300 && !s.logs.join('').includes('TLS certificate reload failed'); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(s.logs.join('')).toContain('TLS certificate reload failed');
    expect(await presented(port)).toBe(b.fingerprint);
    // A certificate with another certificate's key: refused too.
    replace(file('live', 'server.crt'), c.cert);
    expect(s.gatehouse.reloadTls()).toBe(false);
    expect(await presented(port)).toBe(b.fingerprint);
    // Then the matching key arrives: served.
    replace(file('live', 'server.key'), c.key);
    await eventually(port, c.fingerprint);
  }, 120_000);
});

describe('TLS certificate reload on SIGHUP', () => {
  it('reloads in a running server (npm start) when told, for files the watcher cannot see change', async () => {
    // The configured paths are links into a directory that is not watched, as with certbot's live/ and archive/.
    fs.mkdirSync(file('store'));
    fs.mkdirSync(file('links'));
    fs.writeFileSync(file('store', 'cert.pem'), a.cert);
    fs.writeFileSync(file('store', 'key.pem'), a.key, { mode: 0o600 });
    fs.symlinkSync(file('store', 'cert.pem'), file('links', 'server.crt'));
    fs.symlinkSync(file('store', 'key.pem'), file('links', 'server.key'));
    const { url, drop } = await createPgDatabase();
    const port = await freePort();
    const child = spawn(process.execPath, ['src/main.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        PORT: String(port),
        GATEHOUSE_ISSUER: `https://localhost:${port}`,
        GATEHOUSE_AUDIENCE: 'https://agents.example.com',
        GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
        DATABASE_URL: url,
        GATEHOUSE_TLS_CERT_FILE: file('links', 'server.crt'),
        GATEHOUSE_TLS_KEY_FILE: file('links', 'server.key'),
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      for (let i = 0; i < 2400 && !output.includes('gatehouse listening'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(output).toContain('gatehouse listening');
      expect(await presented(port)).toBe(a.fingerprint);
      fs.writeFileSync(file('store', 'key.pem'), b.key);
      fs.writeFileSync(file('store', 'cert.pem'), b.cert);
      child.kill('SIGHUP');
      await eventually(port, b.fingerprint);
      expect(output).toContain('SIGHUP: reloading the TLS certificate');
      expect(output).toContain('TLS certificate reloaded');
    } finally {
      child.kill('SIGTERM');
      await exited;
      await drop();
    }
  }, 300_000);
});

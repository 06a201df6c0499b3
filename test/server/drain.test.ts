// SIGTERM under a steady token load fails no request (docs/architecture.md, "Shutdown"): the
// instance answers /readyz with 503 for GATEHOUSE_DRAIN_SECONDS while still serving, so a load
// balancer stops sending; then the listener closes, requests in flight finish, keep-alive
// connections are closed after their response, and the process exits 0.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { listen } from '../../src/http/server.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createPgDatabase } from '../helpers/db.ts';
import { freePort } from '../helpers/server.ts';

describe('SIGTERM drains before it stops', () => {
  const drops: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const drop of drops) await drop();
  });

  it('keeps serving with /readyz at 503, then exits 0 with zero failed requests', async () => {
    const pgdb = await createPgDatabase();
    drops.push(pgdb.drop);
    const setup = await openDatabase({ databaseUrl: pgdb.url, dataDir: '' });
    await migrateToLatest(setup);
    // A budget far above the load: this test is about the drain, and at the default 600 tokens a
    // minute four loops on a fast machine were refused (429) before the drain was over.
    const client = await createClient(setup.kysely, { name: 'steady', grants: ['client_credentials'], rateLimit: 100_000 });
    await setup.close();

    const port = await freePort();
    const child = spawn(process.execPath, ['src/main.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        PORT: String(port),
        DATABASE_URL: pgdb.url,
        GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
        GATEHOUSE_DRAIN_SECONDS: '2',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 300 && !out.includes('gatehouse listening'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('gatehouse listening');

    // The load: four clients, each on its own keep-alive connection, one token request after another.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const auth = `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`;
    const request = (method: string, path: string, body?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          `${base}${path}`,
          { method, agent, headers: body ? { 'content-type': 'application/x-www-form-urlencoded', authorization: auth } : {} },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    let sending = true;
    let signalled = false;
    const results = { ok: 0, okAfterSignal: 0, failed: [] as string[] };
    const loop = async () => {
      while (sending) {
        try {
          const status = await request('POST', '/token', 'grant_type=client_credentials');
          if (status === 200) {
            results.ok++;
            if (signalled) results.okAfterSignal++;
          } else results.failed.push(`status ${status}`);
        } catch (err) {
          results.failed.push((err as Error).message);
        }
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    while (results.ok < 20) await new Promise((r) => setTimeout(r, 20));

    // A load balancer's health check: it takes the instance out when /readyz says 503.
    child.kill('SIGTERM');
    signalled = true;
    let readyz = 200;
    while (readyz === 200) {
      readyz = await new Promise<number>(
        (resolve) =>
          http
            .get(`${base}/readyz`, { agent: false }, (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            })
            .on('error', () => resolve(0)), // refused: the listener closed without a drain
      );
    }
    expect(readyz).toBe(503);
    // The balancer's next check would come this much later; traffic stops then.
    await new Promise((r) => setTimeout(r, 300));
    sending = false;
    await Promise.all(loops);
    agent.destroy();

    expect(await exited).toBe(0);
    expect(results.failed).toEqual([]);
    expect(results.okAfterSignal).toBeGreaterThan(0); // served while draining
    expect(out).toMatch(/draining, then shutting down/);
  });

  it('closes a keep-alive connection after the response that was in flight when the listener closed', async () => {
    const port = await freePort();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const inFlight = new Promise<void>((r) => (arrived = r));
    const listening = await listen(loadConfig({ PORT: String(port), GATEHOUSE_DATA_DIR: '/nonexistent-not-used' }), (_req, res) => {
      arrived();
      void held.then(() => res.end('done'));
    });
    const agent = new http.Agent({ keepAlive: true });
    const answer = new Promise<{ connection: string | undefined; body: string }>((resolve, reject) => {
      http
        .get(`${listening.url}/`, { agent }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ connection: res.headers.connection, body }));
        })
        .on('error', reject);
    });
    await inFlight;
    const closed = listening.close();
    release();
    expect(await answer).toEqual({ connection: 'close', body: 'done' });
    await closed;
    agent.destroy();
  });
});

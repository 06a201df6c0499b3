// The production topology on loopback (README, "Production topology"): PgBouncer in transaction
// pooling mode, Gatehouse instances as child processes (`node src/main.ts`), and HAProxy with the
// committed deploy/haproxy.cfg terminating TLS 1.3 with a certificate made here. No binary found
// is an error naming the package to install, never a skipped test.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './server.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
export const HAPROXY_CFG = path.join(ROOT, 'deploy/haproxy.cfg');

export function requireBinary(file: string, debianPackage: string): string {
  if (!fs.existsSync(file)) {
    throw new Error(`${file} not found: install the Debian package ${debianPackage} (.ci/run does: apt-get install ${debianPackage})`);
  }
  return file;
}

/** A long-running child whose output is kept for the failure message. */
export interface Child {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Wait (bounded) until the output contains `text`; throws with the output otherwise. */
  waitFor(text: string | RegExp, boundMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function track(proc: ChildProcess, name: string): Child {
  let out = '';
  proc.stdout?.on('data', (c) => (out += c));
  proc.stderr?.on('data', (c) => (out += c));
  let code: number | null | undefined;
  const exited = new Promise<number | null>((r) =>
    proc.on('exit', (c, signal) => {
      code = c ?? (signal ? -1 : null);
      r(code);
    }),
  );
  return {
    proc,
    output: () => out,
    exited,
    async waitFor(text, boundMs = 30_000) {
      const deadline = Date.now() + boundMs;
      const seen = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      while (!seen()) {
        if (code !== undefined) throw new Error(`${name} exited (${code}) before "${text}":\n${out}`);
        if (Date.now() > deadline) throw new Error(`${name}: no "${text}" within ${boundMs} ms:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (code === undefined) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** PgBouncer refuses to run as root: as root, it runs as the `postgres` user (as the private cluster does). */
async function postgresUser(): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}

export interface PgBouncer extends Child {
  /** A DATABASE_URL through the pooler. */
  url: string;
}

/**
 * PgBouncer in transaction pooling mode in front of `pgPort`, with fewer server connections than
 * the instances' pools hold, so that consecutive transactions of one client connection really
 * land on different server connections (what breaks session state and named prepared statements).
 * The ini follows the README's recommendations (ignore_startup_parameters, the timeouts).
 */
export async function startPgBouncer(pgPort: number): Promise<PgBouncer> {
  const bin = requireBinary('/usr/sbin/pgbouncer', 'pgbouncer');
  // A directory of its own: as root, it belongs to the user PgBouncer runs as.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-pgbouncer-'));
  const port = await freePort();
  const ini = path.join(dir, 'pgbouncer.ini');
  const userlist = path.join(dir, 'userlist.txt');
  fs.writeFileSync(userlist, '"postgres" ""\n');
  fs.writeFileSync(
    ini,
    [
      '[databases]',
      `gatehouse = host=127.0.0.1 port=${pgPort} dbname=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${userlist}`,
      'pool_mode = transaction',
      'default_pool_size = 4',
      'max_client_conn = 200',
      // pg sends these as startup parameters (src/db/connect.ts, BOUNDED); a transaction pooler
      // cannot keep per-client session settings, so it ignores them and bounds the work itself.
      'ignore_startup_parameters = statement_timeout,idle_in_transaction_session_timeout',
      'query_timeout = 30',
      'idle_transaction_timeout = 10',
      'log_connections = 0',
      'log_disconnections = 0',
    ].join('\n') + '\n',
  );
  const user = await postgresUser();
  if (user) await run('chown', ['-R', `${user.uid}:${user.gid}`, dir]);
  const proc = spawn(bin, [ini], { stdio: ['ignore', 'pipe', 'pipe'], ...(user ?? {}) });
  const child = track(proc, 'pgbouncer');
  await child.waitFor(/listening on 127\.0\.0\.1:\d+/);
  return {
    ...child,
    url: `postgres://postgres@127.0.0.1:${port}/gatehouse`,
    async stop() {
      await child.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A self-signed certificate for localhost and 127.0.0.1: the PEM (certificate), and HAProxy's bundle (certificate + key). */
export async function makeCertificate(dir: string): Promise<{ cert: string; bundle: string }> {
  const key = path.join(dir, 'proxy.key');
  const cert = path.join(dir, 'proxy.crt');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  const bundle = path.join(dir, 'proxy.pem');
  fs.writeFileSync(bundle, fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8'), { mode: 0o600 });
  return { cert: fs.readFileSync(cert, 'utf8'), bundle };
}

export interface Haproxy extends Child {
  port: number;
  /** A server's status as HAProxy sees it: UP, DOWN, MAINT, or a transition such as "UP 1/2". */
  status(server: string): Promise<string>;
  /** Wait (bounded) until HAProxy reports `server` as `want`. */
  waitStatus(server: string, want: 'UP' | 'DOWN' | 'MAINT', boundMs?: number): Promise<void>;
  /** An operator's command on the admin socket, e.g. `disable server gatehouse/gatehouse-1`. */
  admin(line: string): Promise<string>;
}

/** HAProxy with deploy/haproxy.cfg, the deployment values in its environment. */
export async function startHaproxy(
  dir: string,
  o: { port: number; bundle: string; servers: [string, string]; checkInter: string },
): Promise<Haproxy> {
  const bin = requireBinary('/usr/sbin/haproxy', 'haproxy');
  const port = o.port;
  const socket = path.join(dir, 'haproxy.sock');
  const proc = spawn(bin, ['-db', '-f', HAPROXY_CFG], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      GATEHOUSE_PROXY_BIND: `127.0.0.1:${port}`,
      GATEHOUSE_PROXY_CERT: o.bundle,
      GATEHOUSE_1: o.servers[0],
      GATEHOUSE_2: o.servers[1],
      GATEHOUSE_CHECK_INTER: o.checkInter,
      HAPROXY_STATS_SOCKET: socket,
    },
  });
  const child = track(proc, 'haproxy');
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(socket)) {
    if (Date.now() > deadline) throw new Error(`haproxy did not start:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const command = (line: string) =>
    new Promise<string>((resolve, reject) => {
      let text = '';
      net
        .connect(socket)
        .on('connect', function (this: net.Socket) {
          this.end(`${line}\n`);
        })
        .on('data', (c) => (text += c))
        .on('end', () => resolve(text))
        .on('error', reject);
    });
  const status = async (server: string) => {
    const [header, ...rows] = (await command('show stat')).trim().split('\n');
    const columns = header!.replace(/^# /, '').split(',');
    const row = rows.map((r) => r.split(',')).find((r) => r[0] === 'gatehouse' && r[1] === server);
    if (!row) throw new Error(`haproxy: no server ${server}`);
    return row[columns.indexOf('status')]!;
  };
  return {
    ...child,
    port,
    status,
    admin: command,
    async waitStatus(server, want, boundMs = 15_000) {
      const deadline = Date.now() + boundMs;
      let last = '';
      while ((last = await status(server)) !== want) {
        if (Date.now() > deadline) throw new Error(`haproxy: ${server} is ${last}, not ${want}, after ${boundMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

export interface Instance extends Child {
  port: number;
  address: string;
}

/** One Gatehouse as production runs it: `node src/main.ts`, configured by its environment. */
export async function startInstance(port: number, env: Record<string, string>): Promise<Instance> {
  const proc = spawn(process.execPath, ['src/main.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), ...env },
  });
  const child = track(proc, `gatehouse on ${port}`);
  await child.waitFor('gatehouse listening', 120_000); // a bound for a loaded machine, not a target
  return { ...child, port, address: `127.0.0.1:${port}` };
}

export type Fetch = (url: string, init?: { method?: string; headers?: Record<string, string>; body?: string }) => Promise<Response>;

/**
 * fetch over node:https, for what Node's fetch cannot do without undici's Agent: trust one CA,
 * and send from a chosen local address (127.0.0.2 is a different client address than the
 * proxy's own 127.0.0.1). Redirects are never followed (as `redirect: 'manual'`); `localhost`
 * connects to 127.0.0.1, where the proxy listens.
 */
export function tlsFetch(o: { ca: string; localAddress?: string; agent?: https.Agent }): Fetch {
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const u = new URL(url);
      const req = https.request(
        {
          method: init.method ?? 'GET',
          host: u.hostname === 'localhost' ? '127.0.0.1' : u.hostname,
          servername: u.hostname === 'localhost' ? 'localhost' : undefined,
          port: u.port,
          path: u.pathname + u.search,
          ca: o.ca,
          localAddress: o.localAddress,
          agent: o.agent ?? false,
          headers: {
            host: u.host,
            ...(init.headers ?? {}),
            ...(init.body ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const headers = new Headers();
            for (let i = 0; i < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
            const status = res.statusCode ?? 0;
            const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status, headers }));
          });
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
}

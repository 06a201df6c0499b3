// A real Gatehouse on a real port and a real database, as the tests' users see it.
import crypto from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import { createGatehouse, type Gatehouse, type StartOptions } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/log.ts';
import { freshDb, type Backend, type TestDb } from './db.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface TestServer {
  url: string;
  gatehouse: Gatehouse;
  testDb: TestDb;
  env: Record<string, string>;
  /** Everything the server logged, for secret-leak checks. */
  logs: string[];
  close(): Promise<void>;
}

export async function startServer(
  backend: Backend,
  extraEnv: Record<string, string> = {},
  opts: { testDb?: TestDb; pollMs?: number; auditQueueMax?: number; backchannelLogout?: StartOptions['backchannelLogout'] } = {},
): Promise<TestServer> {
  const testDb = opts.testDb ?? (await freshDb(backend));
  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    GATEHOUSE_ISSUER: `http://localhost:${port}`,
    GATEHOUSE_AUDIENCE: 'https://agents.example.com',
    GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
    GATEHOUSE_DATA_DIR: '/nonexistent-not-used',
    LOG_LEVEL: 'info',
    ...(testDb.url ? { DATABASE_URL: testDb.url } : {}),
    ...extraEnv,
  };
  const config = loadConfig(env);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const gatehouse = await createGatehouse(config, {
    db: testDb.db,
    log: createLogger('debug', sink),
    pollMs: opts.pollMs ?? 200,
    auditQueueMax: opts.auditQueueMax,
    backchannelLogout: opts.backchannelLogout,
  });
  await gatehouse.listen();
  return {
    url: config.issuer,
    gatehouse,
    testDb,
    env,
    logs,
    async close() {
      await gatehouse.close();
      if (testDb.url) await testDb.drop();
    },
  };
}

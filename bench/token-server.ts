// A token server in its own process (one core), for bench/tokens.ts to load from the parent.
// argv[2]: 'postgres' | 'pglite' | 'floor'. Prints one JSON line {url, client_id, client_secret}.
//  - postgres / pglite: Gatehouse as it runs in production, on a fresh database.
//  - floor: a bare oidc-provider with its in-memory adapter, one static client and the same
//    key type (ES256): the library's own cost, the ceiling Gatehouse can reach.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import inspector from 'node:inspector/promises';
import Provider from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';
import { createGatehouse } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { createClient } from '../src/clients/clients.service.ts';
import { createPgDatabase } from '../test/helpers/db.ts';
import { createAccount } from '../src/accounts/accounts.service.ts';
import { hashPassword, verifyPassword } from '../src/accounts/password.ts';
import { adoptTotpSeed, newTotpSeed } from '../src/mfa/totp.ts';
import { memoryReport } from './memory.ts';
import { collectStartupGarbage } from '../src/memory-settings.ts';
import { initializeInChild } from '../src/db/pglite-init.ts';

const kind = process.argv[2];
const port = Number(process.argv[3] ?? 0);
const peopleCount = Number(process.argv[4] ?? 0);
export const BENCH_PASSWORD = 'correct horse battery staple 42';
const AUDIENCE = 'https://agents.example.com';

/**
 * The floor: a bare oidc-provider. With `signin`, also the floor of a sign-in: a public client
 * (code + PKCE), an interaction that verifies one argon2id password hash and finishes at once (no
 * second factor, no database, no audit, consent by loadExistingGrant as Gatehouse does), and the
 * same tokens at the code exchange (JWT access token for the audience, ID token, refresh token):
 * what any sign-in built on oidc-provider costs at least, beside the password hash.
 */
async function floor(signin = false) {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const secret = crypto.randomBytes(32).toString('base64url');
  const provider = new Provider(`http://localhost:${port}`, {
    jwks: {
      keys: [
        { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'es' },
        { ...(await exportJWK(rsa.privateKey)), alg: 'RS256', use: 'sig', kid: 'rs' },
      ] as any,
    },
    clients: [
      { client_id: 'floor', client_secret: secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      {
        client_id: 'floor-app',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1:9/cb'],
      },
    ],
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    issueRefreshToken: () => true,
    loadExistingGrant: async (ctx: any) => {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      if (!ctx.oidc.session?.accountId) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid');
      grant.addResourceScope(AUDIENCE, 'agents');
      await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'agents',
          audience: AUDIENCE,
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
    extraTokenClaims: () => ({ roles: ['operator'], permissions: ['agent:summarizer:inject'] }),
  });
  if (signin) {
    const passwordHash = await hashPassword(BENCH_PASSWORD);
    provider.use(async (ctx, next) => {
      if (!ctx.path.startsWith('/interaction/')) return next();
      await provider.interactionDetails(ctx.req, ctx.res);
      if (!(await verifyPassword(passwordHash, BENCH_PASSWORD))) throw new Error('bench password refused');
      await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: 'person' } }, { mergeWithLastSubmission: false });
      ctx.respond = false;
    });
  }
  // Silence the library's development warnings (they go to the console, not to the figures).
  await new Promise<void>((resolve) => provider.listen(port, '127.0.0.1', resolve as any).on('listening', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    client_id: 'floor',
    client_secret: secret,
    app_client_id: 'floor-app',
    people: [],
    stop: async () => {},
  };
}

async function gatehouse(backend: 'postgres' | 'pglite') {
  const env: Record<string, string> = {
    PORT: String(port),
    // bench/load.ts runs several instances behind one issuer.
    GATEHOUSE_ISSUER: process.env.BENCH_ISSUER ?? `http://localhost:${port}`,
    GATEHOUSE_AUDIENCE: AUDIENCE,
    // bench/load.ts runs several instances on one database: they share it and the master key.
    GATEHOUSE_MASTER_KEY: process.env.BENCH_MASTER_KEY ?? crypto.randomBytes(32).toString('base64'),
    LOG_LEVEL: 'warn',
  };
  let drop = async () => {};
  if (process.env.BENCH_DATABASE_URL) {
    env.DATABASE_URL = process.env.BENCH_DATABASE_URL;
  } else if (backend === 'postgres') {
    const db = await createPgDatabase();
    env.DATABASE_URL = db.url;
    drop = db.drop;
  } else {
    env.GATEHOUSE_DATA_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
    // As `npm start` does (src/main.ts): a child creates the new data directory.
    await initializeInChild(env.GATEHOUSE_DATA_DIR);
  }
  const g = await createGatehouse(loadConfig(env), { log: createLogger('warn') });
  const { url } = await g.listen();
  if (process.env.BENCH_SERVE_ONLY) {
    // A further instance on a database the first one filled: serves, creates nothing.
    return { url, client_id: '', client_secret: '', people: [], database_url: env.DATABASE_URL, stop: () => g.close() };
  }
  const client = await createClient(g.db.kysely, {
    name: 'bench',
    grants: ['client_credentials'],
    roles: ['operator'],
    permissions: ['agent:summarizer:inject'],
    // Far above what one core issues: the limiter runs on every request and never refuses.
    rateLimit: 1_000_000,
  });
  // For the sign-in bench: a browser application and people with known TOTP seeds.
  const people: Array<{ email: string; seed: string }> = [];
  let app: { client_id: string } | null = null;
  if (peopleCount > 0) {
    app = await createClient(g.db.kysely, {
      name: 'bench app',
      grants: ['authorization_code', 'refresh_token'],
      auth: 'none',
      redirectUris: ['http://127.0.0.1:9/cb'],
      // One application signs everyone in and refreshes for them: its token budget must not be the limit measured.
      rateLimit: 1_000_000,
    });
    const passwordHash = await hashPassword(BENCH_PASSWORD);
    for (let i = 0; i < peopleCount; i++) {
      const account = await createAccount(g.db.kysely, { email: `person${i}@bench.example`, role: 'operator', passwordHash });
      const { seed } = await newTotpSeed(account.email);
      await adoptTotpSeed(g.db.kysely, g.sealer, account.id, seed, 0);
      people.push({ email: account.email, seed: seed.toString('base64url') });
    }
  }
  return {
    url,
    client_id: client.client_id,
    client_secret: client.client_secret!,
    app_client_id: app?.client_id,
    people,
    database_url: env.DATABASE_URL,
    stop: async () => {
      await g.close();
      await drop();
      if (env.GATEHOUSE_DATA_DIR) fs.rmSync(env.GATEHOUSE_DATA_DIR, { recursive: true, force: true });
    },
  };
}

const started =
  kind === 'floor' || kind === 'signin-floor' ? await floor(kind === 'signin-floor') : await gatehouse(kind as 'postgres' | 'pglite');
// As src/main.ts does once it listens.
collectStartupGarbage();
const { stop: _stop, ...info } = started as typeof started & { stop: unknown };
process.stdout.write(JSON.stringify(info) + '\n');
// BENCH_CPU_PROF: the parent profiles only the measured window ('prof-start' … 'prof-stop').
let profiler: inspector.Session | null = null;
process.on('message', async (msg) => {
  if (msg === 'rss') process.send!({ rss: process.memoryUsage().rss });
  // CPU time of the whole process (every thread: argon2id runs in libuv's pool), in µs.
  if (msg === 'cpu') process.send!({ cpu: process.cpuUsage() });
  if (msg === 'memory') process.send!({ memory: memoryReport() });
  if (msg === 'memory-after-gc') {
    collectStartupGarbage();
    process.send!({ memory: memoryReport() });
  }
  if (msg === 'prof-start') {
    profiler = new inspector.Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
    process.send!({ profiling: true });
  }
  if (msg === 'prof-stop' && profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    const file = path.join(process.env.BENCH_CPU_PROF!, `${kind}-${process.pid}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(profile));
    profiler.disconnect();
    profiler = null;
    process.send!({ profile: file });
  }
  if (msg === 'stop') {
    await started.stop();
    process.exit(0);
  }
});

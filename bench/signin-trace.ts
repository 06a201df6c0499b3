// `node bench/signin-trace.ts`: one full sign-in (password + TOTP + code exchange) against Gatehouse on a
// fresh PostgreSQL database, in this process; prints each HTTP step with its time and every SQL
// statement it ran. For finding round trips and repeated lookups (issue 8 §7), not for figures.
import crypto from 'node:crypto';
import pg from 'pg';
import { createGatehouse } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { createClient } from '../src/clients/clients.service.ts';
import { createPgDatabase } from '../test/helpers/db.ts';
import { createAccount } from '../src/accounts/accounts.service.ts';
import { hashPassword } from '../src/accounts/password.ts';
import { adoptTotpSeed, newTotpSeed } from '../src/mfa/totp.ts';
import { HttpAgent } from '../test/helpers/http-signin.ts';
import { PASSWORD, signIn } from './signin.ts';

let log: string[] | null = null;
const orig = pg.Client.prototype.query as any;
(pg.Client.prototype as any).query = function (q: any, ...rest: any[]) {
  const text = typeof q === 'string' ? q : q?.text;
  if (log && text) log.push(text.replace(/\s+/g, ' ').slice(0, 110));
  return orig.call(this, q, ...rest);
};
const db = await createPgDatabase();
const g = await createGatehouse(
  loadConfig({
    PORT: '0',
    GATEHOUSE_ISSUER: 'http://localhost:0',
    GATEHOUSE_AUDIENCE: 'https://a.example',
    GATEHOUSE_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
    DATABASE_URL: db.url,
    LOG_LEVEL: 'warn',
  }),
  { log: createLogger('warn') },
);
const { url } = await g.listen();
const app = await createClient(g.db.kysely, {
  name: 'app',
  grants: ['authorization_code', 'refresh_token'],
  auth: 'none',
  redirectUris: ['http://127.0.0.1:9/cb'],
});
const account = await createAccount(g.db.kysely, {
  email: 'p@x.example',
  role: 'operator',
  passwordHash: await hashPassword(PASSWORD),
});
const { seed } = await newTotpSeed(account.email);
await adoptTotpSeed(g.db.kysely, g.sealer, account.id, seed, 0);
await new Promise((r) => setTimeout(r, 500));
const agent = new HttpAgent(url);
const steps: Array<[string, number, number, string[]]> = [];
const origReq = agent.request.bind(agent);
agent.request = async (u: string, init?: any) => {
  log = [];
  const t0 = performance.now();
  const r = await origReq(u, init);
  await g.auditQueue.flush();
  steps.push([
    `${init?.form ? 'POST' : 'GET'} ${new URL(u, url).pathname.replace(/\/interaction\/[^/]+/, '/interaction/UID').replace(/\/auth\/[^/]+/, '/auth/UID')} -> ${r.status}`,
    performance.now() - t0,
    r.text.length,
    log,
  ]);
  log = null;
  return r;
};
await signIn(url, app.client_id, { email: account.email, seed }, agent);
let total = 0;
for (const [name, ms, len, qs] of steps) {
  total += qs.length;
  console.log(`\n## ${name}  ${ms.toFixed(1)} ms  body ${len}  queries ${qs.length}`);
  for (const q of qs) console.log('   ' + q);
}
console.log('\nTOTAL queries', total, 'steps', steps.length);
await g.close();
await db.drop();

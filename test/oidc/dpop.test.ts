// DPoP (RFC 9449) end to end: a service with an independent client library (openid-client)
// gets a DPoP-bound token from a real Gatehouse, and a small agentserver checks it with
// gatehouse/verify; every way of replaying or misusing the token is refused there.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { calculateJwkThumbprint, decodeJwt, exportJWK, SignJWT } from 'jose';
import { BACKENDS, createPgDatabase } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startResourceServer, type ResourceServer } from '../helpers/resource-server.ts';
import { gatehouse } from '../helpers/cli.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { HttpAgent } from '../helpers/http-signin.ts';
import { signInOverHttp } from '../helpers/people.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { updateClient } from '../../src/clients/clients.repository.ts';
import { bindIssuedToken } from '../../src/oidc/dpop.ts';

const AUDIENCE = 'https://agents.example.com';
const insecure = { execute: [oidc.allowInsecureRequests] };
type KeyPair = Awaited<ReturnType<typeof oidc.randomDPoPKeyPair>>;

/** A DPoP proof made by hand, for the requests openid-client would never make. */
async function proof(
  keys: KeyPair,
  claims: { htm: string; htu: string; token?: string; jti?: string; iat?: number; nonce?: string },
): Promise<string> {
  const jwk = await exportJWK(keys.publicKey);
  return new SignJWT({
    htm: claims.htm,
    htu: claims.htu,
    jti: claims.jti ?? crypto.randomUUID(),
    ...(claims.token ? { ath: crypto.hash('sha256', claims.token, 'base64url') } : {}),
    ...(claims.nonce ? { nonce: claims.nonce } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
    .setIssuedAt(claims.iat)
    .sign(keys.privateKey);
}

async function call(url: string, init: { method?: string; scheme?: string; token: string; proof?: string }) {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { authorization: `${init.scheme ?? 'DPoP'} ${init.token}`, ...(init.proof ? { dpop: init.proof } : {}) },
  });
  return { status: res.status, body: (await res.json()) as Record<string, any>, challenge: res.headers.get('www-authenticate') };
}

async function thumbprint(keys: KeyPair): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(keys.publicKey));
}

describe.each(BACKENDS)('DPoP-bound tokens on %s', (backend) => {
  let s: TestServer;
  let rs: ResourceServer;
  let service: { client_id: string; client_secret?: string };
  let config: oidc.Configuration;

  beforeAll(async () => {
    s = await startServer(backend);
    service = await createClient(s.gatehouse.db.kysely, {
      name: 'bound-bot',
      grants: ['client_credentials'],
      roles: ['operator'],
      permissions: ['agent:summarizer:inject'],
      requireDpop: true,
    });
    config = await oidc.discovery(new URL(s.url), service.client_id, undefined, oidc.ClientSecretBasic(service.client_secret!), insecure);
    rs = await startResourceServer(createVerifier({ issuer: s.url, audience: AUDIENCE }));
  });
  afterAll(async () => {
    await rs?.close();
    await s?.close();
  });

  it('advertises DPoP, binds the token of a --require-dpop client to its key, and refuses the client without a proof', async () => {
    expect(config.serverMetadata().dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA']));
    const keys = await oidc.randomDPoPKeyPair('ES256');
    const tokens = await oidc.clientCredentialsGrant(config, {}, { DPoP: oidc.getDPoPHandle(config, keys) });
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    const claims = decodeJwt(tokens.access_token);
    expect(claims.cnf).toEqual({ jkt: await thumbprint(keys) });
    expect(claims).toMatchObject({ sub: service.client_id, roles: ['operator'] });

    await expect(oidc.clientCredentialsGrant(config)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('a client that may use Bearer tokens still gets a bound token when it sends a proof', async () => {
    const plain = await createClient(s.gatehouse.db.kysely, { name: 'plain-bot', grants: ['client_credentials'], roles: ['viewer'] });
    const plainConfig = await oidc.discovery(
      new URL(s.url),
      plain.client_id,
      undefined,
      oidc.ClientSecretBasic(plain.client_secret!),
      insecure,
    );
    const bearer = await oidc.clientCredentialsGrant(plainConfig);
    expect(bearer.token_type.toLowerCase()).toBe('bearer');
    expect(decodeJwt(bearer.access_token).cnf).toBeUndefined();
    const keys = await oidc.randomDPoPKeyPair('ES256');
    const bound = await oidc.clientCredentialsGrant(plainConfig, {}, { DPoP: oidc.getDPoPHandle(plainConfig, keys) });
    expect(decodeJwt(bound.access_token).cnf).toEqual({ jkt: await thumbprint(keys) });
  });

  it('the agentserver accepts the token with a fresh proof, and refuses every replay and misuse with a stable code', async () => {
    const keys = await oidc.randomDPoPKeyPair('ES256');
    const dpop = oidc.getDPoPHandle(config, keys);
    const { access_token: token } = await oidc.clientCredentialsGrant(config, {}, { DPoP: dpop });
    const url = `${rs.url}/threads/42`;

    // openid-client makes the proof for the resource request itself.
    const ok = await oidc.fetchProtectedResource(config, token, new URL(url), 'GET', undefined, undefined, { DPoP: dpop });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ sub: service.client_id, cnf: { jkt: await thumbprint(keys) } });
    // And each request needs a proof of its own: a second fresh one passes too.
    expect((await call(url, { token, proof: await proof(keys, { htm: 'GET', htu: url, token }) })).status).toBe(200);

    // The token alone, as a bearer token or under the DPoP scheme without a proof.
    expect(await call(url, { token, scheme: 'Bearer' })).toMatchObject({ status: 401, body: { error: 'dpop_proof_required' } });
    expect((await call(url, { token })).body.error).toBe('invalid_dpop_proof');
    // A proof for another URL, or another method.
    const elsewhere = await proof(keys, { htm: 'GET', htu: `${rs.url}/threads/43`, token });
    expect((await call(url, { token, proof: elsewhere })).body.error).toBe('invalid_dpop_proof');
    const otherMethod = await proof(keys, { htm: 'POST', htu: url, token });
    expect((await call(url, { token, proof: otherMethod })).body.error).toBe('invalid_dpop_proof');
    // The query and fragment are not part of htu (RFC 9449 §4.3): the same proof for ?page=2 passes.
    expect((await call(`${url}?page=2`, { token, proof: await proof(keys, { htm: 'GET', htu: url, token }) })).status).toBe(200);
    // A proof seen once already (the one openid-client sent first).
    const first = rs.proofs[0]!;
    expect(await call(url, { token, proof: first })).toMatchObject({ status: 401, body: { error: 'dpop_replay' } });
    // A proof by another key, with everything else right.
    const thief = await oidc.randomDPoPKeyPair('ES256');
    const stolen = await proof(thief, { htm: 'GET', htu: url, token });
    expect((await call(url, { token, proof: stolen })).body.error).toBe('dpop_key_mismatch');
    // A proof made for another token of the same key (ath mismatch).
    const { access_token: other } = await oidc.clientCredentialsGrant(config, {}, { DPoP: dpop });
    const forOther = await proof(keys, { htm: 'GET', htu: url, token: other });
    expect((await call(url, { token, proof: forOther })).body.error).toBe('invalid_dpop_proof');
    // A proof without ath, and one from ten minutes ago.
    expect((await call(url, { token, proof: await proof(keys, { htm: 'GET', htu: url }) })).body.error).toBe('invalid_dpop_proof');
    const old = await proof(keys, { htm: 'GET', htu: url, token, iat: Math.floor(Date.now() / 1000) - 600 });
    expect((await call(url, { token, proof: old })).body.error).toBe('invalid_dpop_proof');
    // A proof with an unbound token is refused too: the key binds nothing.
    const plain = await createClient(s.gatehouse.db.kysely, { name: 'plain-2', grants: ['client_credentials'], roles: ['viewer'] });
    const plainConfig = await oidc.discovery(
      new URL(s.url),
      plain.client_id,
      undefined,
      oidc.ClientSecretBasic(plain.client_secret!),
      insecure,
    );
    const { access_token: bearer } = await oidc.clientCredentialsGrant(plainConfig);
    expect((await call(url, { token: bearer, proof: await proof(keys, { htm: 'GET', htu: url, token: bearer }) })).body.error).toBe(
      'dpop_key_mismatch',
    );
    expect((await call(url, { token: bearer, scheme: 'Bearer' })).status).toBe(200);
  });

  it('refuses a proof replayed at /token, and one for another endpoint', async () => {
    const keys = await oidc.randomDPoPKeyPair('ES256');
    const basic = `Basic ${Buffer.from(`${service.client_id}:${service.client_secret}`).toString('base64')}`;
    const post = (dpop: string) =>
      fetch(`${s.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, dpop },
        body: 'grant_type=client_credentials',
      });
    const once = await proof(keys, { htm: 'POST', htu: `${s.url}/token` });
    expect((await post(once)).status).toBe(200);
    const again = await post(once);
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ error: 'invalid_grant' });
    const wrong = await post(await proof(keys, { htm: 'POST', htu: `${s.url}/token/introspection` }));
    expect(await wrong.json()).toMatchObject({ error: 'invalid_dpop_proof' });
  });

  it('lets exactly one of ten parallel token requests with one proof through', async () => {
    const keys = await oidc.randomDPoPKeyPair('ES256');
    const basic = `Basic ${Buffer.from(`${service.client_id}:${service.client_secret}`).toString('base64')}`;
    const one = await proof(keys, { htm: 'POST', htu: `${s.url}/token` });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        fetch(`${s.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, dpop: one },
          body: 'grant_type=client_credentials',
        }).then(async (r) => ({ status: r.status, error: ((await r.json()) as { error?: string }).error })),
      ),
    );
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status !== 200).every((a) => a.status === 400 && a.error === 'invalid_grant')).toBe(true);
  });

  it('a grant Gatehouse signs itself (token exchange) binds its token through bindIssuedToken, like the library grants', async () => {
    // A stand-in for such a grant: it answers the binding it would sign into the token.
    const GRANT = 'urn:gatehouse:test:self-signed';
    s.gatehouse.provider().registerGrantType(GRANT, async (ctx: any) => {
      ctx.body = await bindIssuedToken(ctx);
    });
    const self = await createClient(s.gatehouse.db.kysely, { name: 'self-signed', grants: ['client_credentials'], requireDpop: true });
    const row = await s.gatehouse.db.kysely
      .selectFrom('client')
      .select('metadata')
      .where('client_id', '=', self.client_id)
      .executeTakeFirstOrThrow();
    await updateClient(s.gatehouse.db.kysely, self.client_id, {
      metadata: JSON.stringify({ ...(row.metadata as object), grant_types: ['client_credentials', GRANT] }),
    });
    s.gatehouse.clients.invalidate();
    const basic = `Basic ${Buffer.from(`${self.client_id}:${self.client_secret}`).toString('base64')}`;
    const post = (dpop?: string) =>
      fetch(`${s.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, ...(dpop ? { dpop } : {}) },
        body: `grant_type=${encodeURIComponent(GRANT)}`,
      }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, any> }));
    const keys = await oidc.randomDPoPKeyPair('ES256');
    const once = await proof(keys, { htm: 'POST', htu: `${s.url}/token` });
    expect(await post(once)).toEqual({ status: 200, json: { cnf: { jkt: await thumbprint(keys) }, tokenType: 'DPoP' } });
    expect(await post(once)).toMatchObject({ status: 400, json: { error: 'invalid_grant' } }); // the same proof again
    expect(await post()).toMatchObject({ status: 400, json: { error: 'invalid_grant' } }); // --require-dpop, no proof
    const elsewhere = await proof(keys, { htm: 'POST', htu: `${s.url}/me` });
    expect(await post(elsewhere)).toMatchObject({ status: 400, json: { error: 'invalid_dpop_proof' } });
  });

  describe('a person on a public client', () => {
    const REDIRECT = 'http://localhost:5999/cb';
    let person: TestPerson;
    let app: { client_id: string };
    let appConfig: oidc.Configuration;

    beforeAll(async () => {
      person = await createPerson(s, `dpop-${backend}@example.com`);
      app = await createClient(s.gatehouse.db.kysely, {
        name: 'dpop-spa',
        grants: ['authorization_code', 'refresh_token'],
        auth: 'none',
        redirectUris: [REDIRECT],
        requireDpop: true,
      });
      appConfig = await oidc.discovery(new URL(s.url), app.client_id, undefined, oidc.None(), insecure);
    });

    async function signIn(dpop: oidc.DPoPHandle) {
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(appConfig, {
        redirect_uri: REDIRECT,
        scope: 'openid email',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const agent = new HttpAgent(s.url);
      const back = await signInOverHttp(agent, await agent.follow(await agent.request(url.href)), person);
      return oidc.authorizationCodeGrant(appConfig, new URL(back.location!), { pkceCodeVerifier: verifier }, undefined, { DPoP: dpop });
    }

    it('binds the refresh token to the key: refreshed with it, refused with another key or none', async () => {
      const keys = await oidc.randomDPoPKeyPair('ES256');
      const dpop = oidc.getDPoPHandle(appConfig, keys);
      const tokens = await signIn(dpop);
      expect(tokens.token_type.toLowerCase()).toBe('dpop');
      expect(decodeJwt(tokens.access_token).cnf).toEqual({ jkt: await thumbprint(keys) });
      expect(tokens.refresh_token).toBeTruthy();

      const thief = oidc.getDPoPHandle(appConfig, await oidc.randomDPoPKeyPair('ES256'));
      await expect(oidc.refreshTokenGrant(appConfig, tokens.refresh_token!, {}, { DPoP: thief })).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      await expect(oidc.refreshTokenGrant(appConfig, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      const refreshed = await oidc.refreshTokenGrant(appConfig, tokens.refresh_token!, {}, { DPoP: dpop });
      expect(decodeJwt(refreshed.access_token).cnf).toEqual({ jkt: await thumbprint(keys) });
    });

    it('introspection reports the binding; /me does not take a bound token as a bearer token', async () => {
      const tokens = await signIn(oidc.getDPoPHandle(appConfig, await oidc.randomDPoPKeyPair('ES256')));
      const introspector = await createClient(s.gatehouse.db.kysely, {
        name: 'rs',
        grants: ['client_credentials'],
        introspect: true,
      });
      const res = await fetch(`${s.url}/token/introspection`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${introspector.client_id}:${introspector.client_secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token: tokens.access_token }),
      });
      expect(await res.json()).toMatchObject({
        active: true,
        token_type: 'DPoP',
        cnf: { jkt: (decodeJwt(tokens.access_token).cnf as { jkt: string }).jkt },
      });
      const me = await fetch(`${s.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(me.status).toBe(401);
      expect(await me.json()).toMatchObject({ error: 'invalid_token' });
    });
  });
});

describe('DPoP server nonces across instances on postgres', () => {
  const servers: TestServer[] = [];
  let drop = async () => {};
  afterAll(async () => {
    for (const s of servers) await s.gatehouse.close();
    await drop();
  });

  it('asks for a nonce (use_dpop_nonce, DPoP-Nonce); openid-client retries with it; another instance accepts it', async () => {
    const pgdb = await createPgDatabase();
    drop = pgdb.drop;
    const masterKey = crypto.randomBytes(32).toString('base64');
    for (let i = 0; i < 2; i++) {
      const db = await openDatabase({ databaseUrl: pgdb.url, dataDir: '' });
      servers.push(
        await startServer(
          'postgres',
          { GATEHOUSE_MASTER_KEY: masterKey, DATABASE_URL: pgdb.url, GATEHOUSE_DPOP_REQUIRE_NONCE: 'true' },
          { testDb: { db, url: null, drop: async () => {} } },
        ),
      );
    }
    const [a, b] = servers as [TestServer, TestServer];

    // The owner registers the client from the command line.
    const created = await gatehouse(
      ['clients', 'create', '--name', 'nonce-bot', '--grant', 'client_credentials', '--role', 'viewer', '--require-dpop', '--json'],
      a.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const client = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
    const listed = JSON.parse((await gatehouse(['clients', 'list', '--json'], a.env)).stdout) as { clients: any[] };
    expect(listed.clients.find((c) => c.client_id === client.client_id)).toMatchObject({ require_dpop: true });

    const keys = await oidc.randomDPoPKeyPair('ES256');
    const basic = `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`;
    const post = async (s: TestServer, dpop: string) => {
      const res = await fetch(`${s.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, dpop },
        body: 'grant_type=client_credentials',
      });
      return { status: res.status, json: (await res.json()) as Record<string, any>, nonce: res.headers.get('dpop-nonce') };
    };
    // Without a nonce: refused, with the nonce to use.
    let first: Awaited<ReturnType<typeof post>> = { status: 0, json: {}, nonce: null };
    for (let i = 0; i < 100 && first.status !== 400; i++) {
      first = await post(a, await proof(keys, { htm: 'POST', htu: `${a.url}/token` })); // the client may not be cached yet
      if (first.json.error === 'invalid_client') await new Promise((r) => setTimeout(r, 50));
    }
    expect(first).toMatchObject({ status: 400, json: { error: 'use_dpop_nonce' } });
    expect(first.nonce).toMatch(/^[A-Za-z0-9_-]+$/);
    // The other instance (same master key) takes the nonce the first one gave.
    let second = await post(b, await proof(keys, { htm: 'POST', htu: `${b.url}/token`, nonce: first.nonce! }));
    for (let i = 0; i < 100 && second.json.error === 'invalid_client'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      second = await post(b, await proof(keys, { htm: 'POST', htu: `${b.url}/token`, nonce: first.nonce! }));
    }
    expect(second.status, JSON.stringify(second.json)).toBe(200);
    expect(decodeJwt(second.json.access_token).cnf).toEqual({ jkt: await thumbprint(keys) });
    // A made-up nonce is refused with a fresh one.
    const made = await post(a, await proof(keys, { htm: 'POST', htu: `${a.url}/token`, nonce: 'made-up' }));
    expect(made).toMatchObject({ status: 400, json: { error: 'use_dpop_nonce' } });

    // openid-client does the whole dance by itself: the first request learns the nonce, the retry carries it.
    const config = await oidc.discovery(
      new URL(a.url),
      client.client_id,
      undefined,
      oidc.ClientSecretBasic(client.client_secret),
      insecure,
    );
    const tokens = await oidc.clientCredentialsGrant(
      config,
      {},
      { DPoP: oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256')) },
    );
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
  });
});

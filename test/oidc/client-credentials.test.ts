// Client-credentials tokens as a service and the agentserver see them: a real OIDC client
// library (openid-client) against a real Gatehouse, tokens verified with jose's remote JWKS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { sql } from 'kysely';
import { BACKENDS } from '../helpers/db.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { createVerifier } from '../../src/verify/index.ts';

const AUDIENCE = 'https://agents.example.com';

async function tokenRequest(url: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, text, headers: res.headers };
}

function basic(id: string, secret: string) {
  return { authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` };
}

async function payloadCount(s: TestServer): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from oidc_payload`.execute(s.gatehouse.db.kysely);
  return rows[0]!.n;
}

describe.each(BACKENDS)('client credentials on %s', (backend) => {
  let s: TestServer;
  let client: { client_id: string; client_secret?: string };

  beforeAll(async () => {
    s = await startServer(backend);
    client = await createClient(s.gatehouse.db.kysely, {
      name: 'summarizer-bot',
      grants: ['client_credentials'],
      roles: ['operator'],
      permissions: ['agent:summarizer:inject', 'thread:*:view'],
    });
  });
  afterAll(() => s?.close());

  it('advertises only what Gatehouse supports in discovery', async () => {
    const config = await oidc.discovery(new URL(s.url), client.client_id, undefined, oidc.ClientSecretBasic(client.client_secret!), {
      execute: [oidc.allowInsecureRequests],
    });
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(s.url);
    expect(meta.jwks_uri).toBe(`${s.url}/jwks`);
    expect(meta.response_types_supported).toEqual(['code']);
    expect(new Set(meta.grant_types_supported)).toEqual(
      new Set([
        'authorization_code',
        'refresh_token',
        'client_credentials',
        'urn:ietf:params:oauth:grant-type:device_code',
        'urn:ietf:params:oauth:grant-type:token-exchange',
      ]),
    );
    expect(new Set(meta.token_endpoint_auth_methods_supported)).toEqual(
      new Set(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'none']),
    );
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.introspection_endpoint).toBe(`${s.url}/token/introspection`);
    expect(meta.revocation_endpoint).toBe(`${s.url}/token/revocation`);
    expect(meta.authorization_response_iss_parameter_supported).toBe(true);
  });

  it('issues an RFC 9068 JWT that verifies offline with the expected claims', async () => {
    const config = await oidc.discovery(new URL(s.url), client.client_id, undefined, oidc.ClientSecretBasic(client.client_secret!), {
      execute: [oidc.allowInsecureRequests],
    });
    const before = await payloadCount(s);
    const tokens = await oidc.clientCredentialsGrant(config);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.expires_in).toBe(900);
    expect(tokens.refresh_token).toBeUndefined();

    const header = decodeProtectedHeader(tokens.access_token);
    expect(header).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    const jwks = createRemoteJWKSet(new URL(`${s.url}/jwks`));
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: s.url, audience: AUDIENCE, typ: 'at+jwt' });
    expect(payload.sub).toBe(client.client_id);
    expect(payload.client_id).toBe(client.client_id);
    expect(payload.roles).toEqual(['operator']);
    expect(payload.permissions).toEqual(['agent:summarizer:inject', 'thread:*:view']);
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(typeof payload.jti).toBe('string');
    expect(payload.acr).toBeUndefined();
    expect(payload.amr).toBeUndefined();

    // gatehouse/verify, as the agentserver uses it.
    const verifier = createVerifier({ issuer: s.url, audience: AUDIENCE });
    const claims = await verifier.verify(tokens.access_token);
    expect(claims.roles).toEqual(['operator']);

    // A JWT access token costs no database write.
    expect(await payloadCount(s)).toBe(before);
  });

  it('names the resource when asked and refuses an unknown one', async () => {
    const ok = await tokenRequest(
      s.url,
      `grant_type=client_credentials&resource=${encodeURIComponent(AUDIENCE)}`,
      basic(client.client_id, client.client_secret!),
    );
    expect(ok.status).toBe(200);
    const bad = await tokenRequest(
      s.url,
      `grant_type=client_credentials&resource=${encodeURIComponent('https://evil.example.com')}`,
      basic(client.client_id, client.client_secret!),
    );
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('invalid_target');
  });

  it('refuses bad input with the right OAuth error, no stack trace and no write', async () => {
    const before = await payloadCount(s);
    const cases: Array<[string, Promise<Awaited<ReturnType<typeof tokenRequest>>>, number, string]> = [
      [
        'wrong secret',
        tokenRequest(s.url, 'grant_type=client_credentials', basic(client.client_id, 'not-the-secret')),
        401,
        'invalid_client',
      ],
      ['missing secret', tokenRequest(s.url, `grant_type=client_credentials&client_id=${client.client_id}`), 401, 'invalid_client'],
      [
        'unknown client',
        tokenRequest(s.url, 'grant_type=client_credentials', basic('svc_doesnotexist', 'whatever')),
        401,
        'invalid_client',
      ],
      [
        'unsupported grant',
        tokenRequest(s.url, 'grant_type=password&username=a&password=b', basic(client.client_id, client.client_secret!)),
        400,
        'unsupported_grant_type',
      ],
      [
        'implicit grant',
        tokenRequest(s.url, 'grant_type=implicit', basic(client.client_id, client.client_secret!)),
        400,
        'unsupported_grant_type',
      ],
      [
        'grant not allowed for the client',
        tokenRequest(s.url, 'grant_type=refresh_token&refresh_token=x', basic(client.client_id, client.client_secret!)),
        400,
        'invalid_request',
      ],
      ['missing grant_type', tokenRequest(s.url, '', basic(client.client_id, client.client_secret!)), 400, 'invalid_request'],
      [
        'malformed authorization header',
        tokenRequest(s.url, 'grant_type=client_credentials', { authorization: 'Basic %%%' }),
        400,
        'invalid_request',
      ],
      [
        'duplicate parameters',
        tokenRequest(s.url, 'grant_type=client_credentials&grant_type=client_credentials', basic(client.client_id, client.client_secret!)),
        400,
        'invalid_request',
      ],
      [
        'oversized body',
        tokenRequest(s.url, 'grant_type=client_credentials&pad=' + 'x'.repeat(100_000), basic(client.client_id, client.client_secret!)),
        413,
        'invalid_request',
      ],
    ];
    for (const [name, pending, status, error] of cases) {
      const res = await pending;
      expect(res.status, name).toBe(status);
      expect(res.json?.error, name).toBe(error);
      expect(res.text, name).not.toMatch(/\n\s+at |Error:|node_modules/);
      expect(res.headers.get('x-content-type-options'), name).toBe('nosniff');
      expect(res.headers.get('cache-control'), name).toMatch(/no-store/);
    }
    const wrong = await tokenRequest(s.url, 'grant_type=client_credentials', basic(client.client_id, 'not-the-secret'));
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic /);
    const json = await fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...basic(client.client_id, client.client_secret!) },
      body: '{"grant_type":"client_credentials"}',
    });
    expect(json.status).toBe(400);
    expect(await payloadCount(s)).toBe(before);
  });

  it('enforces allowed source networks with the same answer as a wrong secret', async () => {
    const fenced = await createClient(s.gatehouse.db.kysely, {
      name: 'fenced',
      grants: ['client_credentials'],
      roles: ['viewer'],
      allowedCidrs: ['10.0.0.0/8', '2001:db8::/32'],
    });
    const refused = await tokenRequest(s.url, 'grant_type=client_credentials', basic(fenced.client_id, fenced.client_secret!));
    expect(refused.status).toBe(401);
    expect(refused.json).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    const wrongSecret = await tokenRequest(s.url, 'grant_type=client_credentials', basic(fenced.client_id, 'nope'));
    expect(wrongSecret.json).toEqual(refused.json);

    const local = await createClient(s.gatehouse.db.kysely, {
      name: 'local',
      grants: ['client_credentials'],
      roles: ['viewer'],
      allowedCidrs: ['127.0.0.0/8', '::1/128'],
    });
    const allowed = await tokenRequest(s.url, 'grant_type=client_credentials', basic(local.client_id, local.client_secret!));
    expect(allowed.status).toBe(200);
  });

  it('never stores a client secret in clear', async () => {
    const row = await s.gatehouse.db.kysely
      .selectFrom('client')
      .selectAll()
      .where('client_id', '=', client.client_id)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(client.client_secret!);
  });

  it('serves health, readiness, metrics and security headers', async () => {
    const health = await fetch(`${s.url}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${s.url}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { database: true, keys: true } });
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/gatehouse_tokens_issued_total\{grant_type="client_credentials"\} [1-9]/);
    expect(metrics).toMatch(/gatehouse_token_errors_total\{error="invalid_client"\} [1-9]/);
    const discovery = await fetch(`${s.url}/.well-known/openid-configuration`);
    expect(discovery.headers.get('x-content-type-options')).toBe('nosniff');
    expect(discovery.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const jwks = await fetch(`${s.url}/jwks`);
    expect(jwks.headers.get('cache-control')).toBe('public, max-age=300');
    const body = (await jwks.json()) as any;
    for (const key of body.keys) {
      expect(key.d).toBeUndefined();
      expect(key.p).toBeUndefined();
    }
    // current + next for ES256 (access tokens) and RS256 (ID tokens)
    expect(body.keys.map((k: any) => k.alg).sort()).toEqual(['ES256', 'ES256', 'RS256', 'RS256']);
  });

  it('keeps no secret in its logs', async () => {
    const all = s.logs.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(client.client_secret!);
  });
});

describe('allowed networks behind a proxy (PostgreSQL)', () => {
  it('trusts only the address the proxy appended, and no forwarded header without GATEHOUSE_TRUST_PROXY', async () => {
    const proxied = await startServer('postgres', { GATEHOUSE_TRUST_PROXY: 'true' });
    const direct = await startServer('postgres');
    try {
      for (const s of [proxied, direct]) {
        const c = await createClient(s.gatehouse.db.kysely, {
          name: 'fenced',
          grants: ['client_credentials'],
          allowedCidrs: ['10.0.0.0/8'],
        });
        (s as any).fenced = c;
      }
      const ask = (s: TestServer, xff: string) => {
        const c = (s as any).fenced;
        return tokenRequest(s.url, 'grant_type=client_credentials', { ...basic(c.client_id, c.client_secret), 'x-forwarded-for': xff });
      };
      // The proxy appended 10.9.9.9: allowed.
      expect((await ask(proxied, '10.9.9.9')).status).toBe(200);
      // The client claimed 10.9.9.9, the proxy appended the real 203.0.113.7: refused.
      expect((await ask(proxied, '10.9.9.9, 203.0.113.7')).status).toBe(401);
      // Without a trusted proxy the header is ignored (the request comes from 127.0.0.1).
      expect((await ask(direct, '10.9.9.9')).status).toBe(401);
    } finally {
      await proxied.close();
      await direct.close();
    }
  });
});

// The other two ways a service authenticates: a private-key JWT (RFC 7523) and a TLS client
// certificate (RFC 8705 tls_client_auth) over Gatehouse's own TLS 1.3 listener.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { exportJWK, generateKeyPair } from 'jose';
import { createClient } from '../../src/clients/clients.service.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';
import { createTestPki, type TestPki } from '../helpers/certificates.ts';

describe('private_key_jwt on postgres', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('postgres');
  });
  afterAll(() => s?.close());

  it('issues tokens to a client that signs its assertion, and refuses another key', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'svc-key-1', alg: 'ES256', use: 'sig' };
    const client = await createClient(s.gatehouse.db.kysely, {
      name: 'pkjwt',
      grants: ['client_credentials'],
      auth: 'private_key_jwt',
      jwks: { keys: [jwk] },
      roles: ['viewer'],
    });
    expect(client.client_secret).toBeUndefined();

    const config = await oidc.discovery(
      new URL(s.url),
      client.client_id,
      undefined,
      oidc.PrivateKeyJwt({ key: privateKey, kid: 'svc-key-1' }),
      { execute: [oidc.allowInsecureRequests] },
    );
    const tokens = await oidc.clientCredentialsGrant(config);
    const claims = await createVerifier({ issuer: s.url, audience: 'https://agents.example.com' }).verify(tokens.access_token);
    expect(claims).toMatchObject({ sub: client.client_id, roles: ['viewer'] });

    const intruder = await generateKeyPair('ES256', { extractable: true });
    const bad = await oidc.discovery(
      new URL(s.url),
      client.client_id,
      undefined,
      oidc.PrivateKeyJwt({ key: intruder.privateKey, kid: 'svc-key-1' }),
      { execute: [oidc.allowInsecureRequests] },
    );
    await expect(oidc.clientCredentialsGrant(bad)).rejects.toMatchObject({ error: 'invalid_client', status: 401 });
  });

  it('refuses a JWKS that carries a private key', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    await expect(
      createClient(s.gatehouse.db.kysely, {
        name: 'leaky',
        grants: ['client_credentials'],
        auth: 'private_key_jwt',
        jwks: { keys: [await exportJWK(privateKey)] },
      }),
    ).rejects.toMatchObject({ code: 'VALIDATION', message: /public keys only/ });
  });
});

describe('tls_client_auth over TLS 1.3 on pglite', () => {
  let pki: TestPki;
  let s: TestServer;

  beforeAll(async () => {
    pki = createTestPki();
    const p = await freePort();
    s = await startServer('pglite', {
      PORT: String(p),
      GATEHOUSE_ISSUER: `https://localhost:${p}`,
      GATEHOUSE_TLS_CERT_FILE: pki.file('server.crt'),
      GATEHOUSE_TLS_KEY_FILE: pki.file('server.key'),
      GATEHOUSE_TLS_CA_FILE: pki.file('ca.crt'),
    });
  });
  afterAll(async () => {
    await s?.close();
    pki?.remove();
  });

  function post(
    body: string,
    who: string | null,
    opts: { maxVersion?: 'TLSv1.2' } = {},
  ): Promise<{ status: number; json: any; headers: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${s.url}/token`,
        {
          method: 'POST',
          ca: pki.read('ca.crt'),
          ...(who ? { cert: pki.read(`${who}.crt`), key: pki.read(`${who}.key`) } : {}),
          ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          agent: false,
        },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text), headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it('authenticates a client by its certificate subject and nothing else', async () => {
    const client = await createClient(s.gatehouse.db.kysely, {
      name: 'mtls',
      grants: ['client_credentials'],
      auth: 'tls_client_auth',
      tlsSubjectDn: 'O=Gatehouse Test, CN=svc.internal',
      roles: ['operator'],
    });
    const body = `grant_type=client_credentials&client_id=${client.client_id}`;
    const ok = await post(body, 'svc');
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.headers['strict-transport-security']).toMatch(/max-age=/);
    // The JWKS as published (fetch() here would not trust the test CA).
    const claims = await createVerifier({
      issuer: s.url,
      audience: 'https://agents.example.com',
      jwks: { keys: s.gatehouse.keys().published } as any,
    }).verify(ok.json.access_token);
    expect(claims.roles).toEqual(['operator']);

    expect((await post(body, 'other')).json.error).toBe('invalid_client'); // trusted CA, wrong subject
    expect((await post(body, 'rogue')).json.error).toBe('invalid_client'); // right subject, untrusted CA
    expect((await post(body, null)).json.error).toBe('invalid_client'); // no certificate
  });

  it('speaks TLS 1.3 only', async () => {
    await expect(post('grant_type=client_credentials', null, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
  });
});

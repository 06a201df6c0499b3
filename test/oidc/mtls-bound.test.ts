// Certificate-bound access tokens (RFC 8705 §3): a tls_client_auth service registered with
// --certificate-bound gets a token carrying cnf.x5t#S256 over Gatehouse's TLS 1.3 listener, and
// the agentserver (its own TLS listener asking for client certificates) accepts it only over a
// connection made with the same certificate.
import crypto from 'node:crypto';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { createClient } from '../../src/clients/clients.service.ts';
import { createVerifier, type Verifier } from '../../src/verify/index.ts';
import { createTestPki, type TestPki } from '../helpers/certificates.ts';
import { startResourceServer, type ResourceServer } from '../helpers/resource-server.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

const AUDIENCE = 'https://agents.example.com';

describe('certificate-bound tokens over TLS 1.3 on pglite', () => {
  let pki: TestPki;
  let s: TestServer;
  let rs: ResourceServer;
  let verifier: Verifier;

  beforeAll(async () => {
    pki = createTestPki(['svc', 'other']);
    const port = await freePort();
    s = await startServer('pglite', {
      PORT: String(port),
      GATEHOUSE_ISSUER: `https://localhost:${port}`,
      GATEHOUSE_TLS_CERT_FILE: pki.file('server.crt'),
      GATEHOUSE_TLS_KEY_FILE: pki.file('server.key'),
      GATEHOUSE_TLS_CA_FILE: pki.file('ca.crt'),
    });
    // The JWKS as published (fetch() here would not trust the test CA).
    verifier = createVerifier({ issuer: s.url, audience: AUDIENCE, jwks: { keys: s.gatehouse.keys().published } as any });
    rs = await startResourceServer(verifier, { cert: pki.read('server.crt'), key: pki.read('server.key'), ca: pki.read('ca.crt') });
  });
  afterAll(async () => {
    await rs?.close();
    await s?.close();
    pki?.remove();
  });

  function request(
    url: string,
    init: { method?: string; body?: string; who: string | null; headers?: Record<string, string> },
  ): Promise<{ status: number; json: any }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method: init.method ?? 'GET',
          ca: pki.read('ca.crt'),
          ...(init.who ? { cert: pki.read(`${init.who}.crt`), key: pki.read(`${init.who}.key`) } : {}),
          headers: init.headers ?? {},
          agent: false,
        },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
  }

  const tokenFor = (clientId: string, who: string) =>
    request(`${s.url}/token`, {
      method: 'POST',
      who,
      body: `grant_type=client_credentials&client_id=${clientId}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });

  it('binds the token to the certificate; the agentserver accepts it with that certificate only', async () => {
    const client = await createClient(s.gatehouse.db.kysely, {
      name: 'mtls-bound',
      grants: ['client_credentials'],
      auth: 'tls_client_auth',
      tlsSubjectDn: 'O=Gatehouse Test, CN=svc.internal',
      roles: ['operator'],
      certificateBound: true,
    });
    const issued = await tokenFor(client.client_id, 'svc');
    expect(issued.status, JSON.stringify(issued.json)).toBe(200);
    const token = issued.json.access_token as string;
    const svcCert = new crypto.X509Certificate(pki.read('svc.crt'));
    const x5t = crypto.hash('sha256', svcCert.raw, 'base64url');
    expect(decodeJwt(token).cnf).toEqual({ 'x5t#S256': x5t });

    const call = (who: string | null) => request(`${rs.url}/threads`, { who, headers: { authorization: `Bearer ${token}` } });
    expect(await call('svc')).toMatchObject({ status: 200, json: { sub: client.client_id, cnf: { 'x5t#S256': x5t } } });
    // Another certificate from the same trusted CA, or none at all.
    expect(await call('other')).toMatchObject({ status: 401, json: { error: 'certificate_mismatch' } });
    expect(await call(null)).toMatchObject({ status: 401, json: { error: 'certificate_required' } });
    expect(await call('rogue')).toMatchObject({ status: 401, json: { error: 'certificate_mismatch' } });

    // verify() takes the certificate as PEM, DER or its thumbprint alike.
    const pem = pki.read('svc.crt').toString('utf8');
    await expect(verifier.verify(token, { certificate: pem })).resolves.toMatchObject({ sub: client.client_id });
    await expect(verifier.verify(token, { certificate: svcCert.raw })).resolves.toMatchObject({ sub: client.client_id });
    await expect(verifier.verify(token, { certificate: x5t })).resolves.toMatchObject({ sub: client.client_id });
    await expect(verifier.verify(token, { certificate: pki.read('other.crt').toString('utf8') })).rejects.toMatchObject({
      code: 'certificate_mismatch',
    });
    await expect(verifier.verify(token, { certificate: 'not a certificate' })).rejects.toMatchObject({ code: 'certificate_mismatch' });
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: 'certificate_required' });
  });

  it('leaves tokens unbound for a tls_client_auth client registered without --certificate-bound', async () => {
    const client = await createClient(s.gatehouse.db.kysely, {
      name: 'mtls-plain',
      grants: ['client_credentials'],
      auth: 'tls_client_auth',
      tlsSubjectDn: 'O=Gatehouse Test, CN=other.internal',
      roles: ['viewer'],
    });
    const issued = await tokenFor(client.client_id, 'other');
    expect(issued.status, JSON.stringify(issued.json)).toBe(200);
    expect(decodeJwt(issued.json.access_token).cnf).toBeUndefined();
    expect((await request(`${rs.url}/x`, { who: null, headers: { authorization: `Bearer ${issued.json.access_token}` } })).status).toBe(
      200,
    );
  });

  it('refuses --certificate-bound without tls_client_auth', async () => {
    await expect(
      createClient(s.gatehouse.db.kysely, { name: 'nope', grants: ['client_credentials'], certificateBound: true }),
    ).rejects.toMatchObject({ code: 'VALIDATION', message: /tls_client_auth/ });
  });
});

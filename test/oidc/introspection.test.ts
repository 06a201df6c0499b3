// RFC 7662 introspection of Gatehouse's own JWT access tokens, its access policy (the token's own
// client, or a resource server registered with --introspect), and gatehouse/verify { online: true }.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.service.ts';
import { createVerifier } from '../../src/verify/index.ts';
import { rotateKeys } from '../../src/keys/keys.service.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { BACKENDS } from '../helpers/db.ts';
import { HttpAgent } from '../helpers/http-signin.ts';
import { signInOverHttp } from '../helpers/people.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import crypto from 'node:crypto';

const REDIRECT = 'http://127.0.0.1:9/callback';
const AUDIENCE = 'https://agents.example.com';
type Creds = { client_id: string; client_secret?: string };

describe.each(BACKENDS)('introspection of access tokens (%s)', (backend) => {
  let s: TestServer;
  let app: Creds;
  let rs: Creds;
  let other: Creds;
  let person: TestPerson;

  beforeAll(async () => {
    s = await startServer(backend);
    const db = s.gatehouse.db.kysely;
    app = await createClient(db, { name: 'app', grants: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT] });
    rs = await createClient(db, { name: 'agentserver', grants: ['client_credentials'], introspect: true });
    other = await createClient(db, { name: 'other service', grants: ['client_credentials'], auth: 'client_secret_post' });
    person = await createPerson(s, `intro-${backend}@example.com`, 'viewer');
  });
  afterAll(() => s?.close());

  const basic = (c: Creds) => `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}`;
  async function tokenRequest(c: Creds, params: Record<string, string>) {
    const res = await fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(c) },
      body: new URLSearchParams(params),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as { access_token: string; refresh_token?: string; scope?: string };
  }
  async function introspect(c: Creds, token: string, inBody = false) {
    const res = await fetch(`${s.url}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(inBody ? {} : { authorization: basic(c) }) },
      body: new URLSearchParams({ token, ...(inBody ? { client_id: c.client_id, client_secret: c.client_secret! } : {}) }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  }
  async function personTokens() {
    const agent = new HttpAgent(s.url);
    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const q = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: 'openid email',
      redirect_uri: REDIRECT,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    const back = await signInOverHttp(agent, await agent.follow(await agent.request(`/auth?${q}`)), person);
    const code = new URL(back.location!).searchParams.get('code')!;
    return tokenRequest(app, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
  }

  it('answers for a person token: the own client and a resource server see it, another client does not', async () => {
    const t = await personTokens();
    const own = await introspect(app, t.access_token);
    expect(own).toMatchObject({ active: true, sub: person.id, client_id: app.client_id, aud: AUDIENCE, iss: s.url, token_type: 'Bearer' });
    expect((own.scope as string).split(' ').sort()).toEqual(['email', 'openid']);
    expect(await introspect(rs, t.access_token)).toMatchObject({ active: true, sub: person.id });
    expect(await introspect(other, t.access_token, true)).toEqual({ active: false });
    // The same policy for tokens oidc-provider stores itself (refresh tokens).
    expect(await introspect(other, t.refresh_token!, true)).toEqual({ active: false });
    expect(await introspect(app, t.refresh_token!)).toMatchObject({ active: true });
    // An unauthenticated caller learns nothing.
    const anon = await fetch(`${s.url}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: t.access_token }),
    });
    expect([400, 401]).toContain(anon.status);
    expect(await anon.json()).not.toHaveProperty('active');
  });

  it('inactive once the grant is revoked (refresh token revocation), and gatehouse/verify { online: true } says so', async () => {
    const t = await personTokens();
    const verifier = createVerifier({
      issuer: s.url,
      audience: AUDIENCE,
      introspection: { clientId: rs.client_id, clientSecret: rs.client_secret!, cacheMs: 0 },
    });
    await expect(verifier.verify(t.access_token, { online: true })).resolves.toMatchObject({ sub: person.id });
    const revoke = await fetch(`${s.url}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(app) },
      body: new URLSearchParams({ token: t.refresh_token!, token_type_hint: 'refresh_token' }),
    });
    expect(revoke.status).toBe(200);
    expect(await introspect(rs, t.access_token)).toEqual({ active: false });
    await expect(verifier.verify(t.access_token, { online: true })).rejects.toMatchObject({ code: 'inactive' });
    // Offline, the token is still within its 15 minutes: that is what the online check is for.
    await expect(verifier.verify(t.access_token)).resolves.toMatchObject({ sub: person.id });
  });

  it('inactive once the person is disabled, or the signing key withdrawn from the JWKS', async () => {
    const t = await personTokens();
    const svc = await tokenRequest(other, { grant_type: 'client_credentials', client_id: other.client_id });
    expect(await introspect(rs, svc.access_token)).toMatchObject({ active: true, sub: other.client_id, client_id: other.client_id });
    const db = s.gatehouse.db.kysely;
    await sql`update account set status = 'disabled' where id = ${person.id}`.execute(db);
    expect(await introspect(rs, t.access_token)).toEqual({ active: false });
    await sql`update account set status = 'active' where id = ${person.id}`.execute(db);
    expect(await introspect(rs, t.access_token)).toMatchObject({ active: true });
    // Withdraw the key that signed it (what `keys revoke` does): rotate, then unpublish the old kid.
    const kid = JSON.parse(Buffer.from(t.access_token.split('.')[0]!, 'base64url').toString()).kid as string;
    await rotateKeys(db, s.gatehouse.sealer, s.gatehouse.keyPolicy, { force: true });
    await sql`update signing_key set publish_until = now() - interval '1 minute' where kid = ${kid}`.execute(db);
    await s.gatehouse.refresh();
    expect(s.gatehouse.keys().published.some((k) => k.kid === kid)).toBe(false);
    expect(await introspect(rs, t.access_token)).toEqual({ active: false });
  });

  it('the online check has its own timeout: an unreachable Gatehouse is introspection_unavailable', async () => {
    const t = await personTokens();
    const verifier = createVerifier({
      issuer: s.url,
      audience: AUDIENCE,
      introspection: { clientId: rs.client_id, clientSecret: rs.client_secret!, endpoint: 'http://127.0.0.1:9/introspect', timeoutMs: 500 },
    });
    await expect(verifier.verify(t.access_token, { online: true })).rejects.toMatchObject({ code: 'introspection_unavailable' });
    await expect(createVerifier({ issuer: s.url, audience: AUDIENCE }).verify(t.access_token, { online: true })).rejects.toThrow(TypeError);
  });
});

// Issue 9 §1, §2, §4, §5 (delegation): agents are principals, the agentserver's client exchanges a
// signed-in person's access token plus an agent's actor token for a delegated token (RFC 8693), and
// gatehouse/verify reads it offline. openid-client (a library nobody here wrote) is the client.
import crypto from 'node:crypto';
import * as oidc from 'openid-client';
import { calculateJwkThumbprint, decodeJwt, exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, setAgentDisabled } from '../../src/agents/agents.service.ts';
import { disableAccount, endAllSessions } from '../../src/accounts/accounts.service.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { actingAgent, actorChain, can, createVerifier, hasRole, isDelegated, VerifyError } from '../../src/verify/index.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { BACKENDS } from '../helpers/db.ts';
import { HttpAgent } from '../helpers/http-signin.ts';
import { signInOverHttp } from '../helpers/people.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const AUDIENCE = 'https://agents.example.com';
const REDIRECT = 'http://127.0.0.1:9/callback';
type Creds = { id: string; secret: string };

async function eventually<T>(attempt: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  let last: T;
  for (let i = 0; i < 100; i++) {
    last = await attempt();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}: ${JSON.stringify(last!)}`);
}

describe.each(BACKENDS)('delegation by token exchange (%s)', (backend) => {
  let s: TestServer;
  let app: { client_id: string; client_secret?: string };
  let agentserver: Creds;
  let plainService: Creds;
  let person: TestPerson;
  let summarizer: Creds;
  let helper: Creds;
  let exchanger: oidc.Configuration;
  /** The person's access token from one sign-in (each TOTP sign-in waits for a fresh code step). */
  let signedIn: string;

  const configFor = (c: Creds) =>
    oidc.discovery(new URL(s.url), c.id, undefined, oidc.ClientSecretBasic(c.secret), { execute: [oidc.allowInsecureRequests] });

  beforeAll(async () => {
    s = await startServer(backend);
    const db = s.gatehouse.db.kysely;
    app = await createClient(db, { name: 'agentserver gui', grants: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT] });
    const as = await createClient(db, { name: 'agentserver', grants: ['client_credentials', 'token_exchange'] });
    agentserver = { id: as.client_id, secret: as.client_secret! };
    const plain = await createClient(db, { name: 'plain service', grants: ['client_credentials'], roles: ['viewer'] });
    plainService = { id: plain.client_id, secret: plain.client_secret! };
    person = await createPerson(s, `deleg-${backend}@example.com`, 'operator', ['thread:42:view', 'config:prompts:read']);
    const a = await createAgent(db, {
      name: 'summarizer',
      permissions: ['agent:summarizer:*', 'thread:*:view', 'config:prompts:read'],
      maxRole: 'viewer',
    });
    summarizer = { id: a.agent_id, secret: a.client_secret! };
    const h = await createAgent(db, { name: 'helper', permissions: ['thread:42:view', 'agent:summarizer:inject'] });
    helper = { id: h.agent_id, secret: h.client_secret! };
    exchanger = await configFor(agentserver);
    signedIn = await signIn(person);
  });
  afterAll(() => s?.close());

  const verifier = () => createVerifier({ issuer: s.url, audience: AUDIENCE });

  /** A person signs in (code + PKCE, over HTTP) to the agentserver's GUI: their access token. */
  async function signIn(who: TestPerson): Promise<string> {
    const agent = new HttpAgent(s.url);
    const verifierValue = crypto.randomBytes(32).toString('base64url');
    const q = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: REDIRECT,
      code_challenge: crypto.createHash('sha256').update(verifierValue).digest('base64url'),
      code_challenge_method: 'S256',
    });
    const back = await signInOverHttp(agent, await agent.follow(await agent.request(`/auth?${q}`)), who);
    const code = new URL(back.location!).searchParams.get('code')!;
    const res = await fetch(`${s.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifierValue }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  const personToken = async () => signedIn;

  /** An agent's own client-credentials token: its actor token. */
  async function actorToken(agent: Creds): Promise<string> {
    return (await oidc.clientCredentialsGrant(await configFor(agent))).access_token;
  }

  function exchange(subject: string, actor: string, extra: Record<string, string> = {}, config = exchanger) {
    return oidc.genericGrantRequest(config, EXCHANGE, {
      subject_token: subject,
      subject_token_type: ACCESS,
      actor_token: actor,
      actor_token_type: ACCESS,
      ...extra,
    });
  }

  /** The OAuth error of a refused exchange (openid-client throws ResponseBodyError). */
  async function refused(p: Promise<unknown>): Promise<{ error: string; status: number; description?: string }> {
    try {
      await p;
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError) return { error: err.error, status: err.status, description: err.error_description };
      throw err;
    }
    throw new Error('the exchange was not refused');
  }

  /** The same request as raw HTTP, for what openid-client would not send. */
  function rawExchange(c: Creds, body: Record<string, string>) {
    return fetch(`${s.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${c.id}:${c.secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: EXCHANGE, ...body }),
    });
  }

  it('exchanges a signed-in person token for an agent: verifies offline with sub, act and the intersection', async () => {
    const subject = await personToken();
    const actor = await actorToken(summarizer);
    const res = await exchange(subject, actor);
    expect(res.issued_token_type).toBe(ACCESS);
    expect(res.token_type.toLowerCase()).toBe('bearer');
    expect(res.refresh_token).toBeUndefined();
    expect(res.expires_in).toBeLessThanOrEqual(300);
    expect(res.expires_in).toBeGreaterThan(290);

    const claims = await verifier().verify(res.access_token);
    expect(claims.sub).toBe(person.id);
    expect(claims.client_id).toBe(agentserver.id);
    expect(claims.aud).toBe(AUDIENCE);
    expect(claims.act).toEqual({ sub: summarizer.id });
    expect(isDelegated(claims)).toBe(true);
    expect(actingAgent(claims)).toBe(summarizer.id);
    expect(actorChain(claims)).toEqual([summarizer.id]);
    // roles: operator (person) ∧ viewer (agent ceiling) = viewer.
    expect(claims.roles).toEqual(['viewer']);
    // Person: operator grants (agent:*:inject, agent:*:view-config) + viewer's + thread:42:view + config:prompts:read.
    // Agent: agent:summarizer:* + thread:*:view + config:prompts:read + viewer's.
    // Both: agent:summarizer:inject, agent:summarizer:view-config, config:prompts:read, and viewer's (carried by the role).
    expect(claims.permissions).toEqual(['agent:summarizer:inject', 'agent:summarizer:view-config', 'config:prompts:read']);
    expect(can(claims, 'agent:summarizer:inject')).toBe(true);
    expect(can(claims, 'agent:other:inject')).toBe(false); // the person may, the agent's ceiling does not
    expect(can(claims, 'agent:summarizer:pause')).toBe(false); // the agent's ceiling would, the person may not
    expect(can(claims, 'thread:7:view')).toBe(true); // viewer
    expect(hasRole(claims, 'viewer')).toBe(true);
    expect(hasRole(claims, 'operator')).toBe(false);
    // How the person signed in is kept for step-up checks.
    expect(claims.acr).toBe('urn:gatehouse:acr:mfa');
    expect(claims.auth_time).toBeTypeOf('number');
    // Audited with person, actor chain, client and what was granted.
    await s.gatehouse.auditQueue.flush();
    const row = await s.gatehouse.db.kysely
      .selectFrom('audit_event')
      .selectAll()
      .where('action', '=', 'token.exchange')
      .where('outcome', '=', 'success')
      .orderBy('seq', 'desc')
      .executeTakeFirstOrThrow();
    expect(row.actor).toBe(agentserver.id);
    expect(row.target).toBe(person.id);
    expect(row.details).toMatchObject({
      person: person.id,
      actors: [summarizer.id],
      client_id: agentserver.id,
      roles: ['viewer'],
      permissions: claims.permissions,
    });
    expect(JSON.stringify(row.details)).not.toContain(subject.slice(0, 40));
  });

  it('binds a delegated token to the key of a DPoP proof (issue 9 §3): verified with a fresh proof, refused without', async () => {
    const keys = await oidc.randomDPoPKeyPair('ES256');
    const jwk = await exportJWK(keys.publicKey);
    const delegated = await oidc.genericGrantRequest(
      exchanger,
      EXCHANGE,
      {
        subject_token: await personToken(),
        subject_token_type: ACCESS,
        actor_token: await actorToken(summarizer),
        actor_token_type: ACCESS,
      },
      { DPoP: oidc.getDPoPHandle(exchanger, keys) },
    );
    expect(delegated.token_type.toLowerCase()).toBe('dpop');
    const token = delegated.access_token;
    expect(decodeJwt(token).cnf).toEqual({ jkt: await calculateJwkThumbprint(jwk) });
    const url = 'https://agents.example.com/threads/42';
    const proof = await new SignJWT({ htm: 'GET', htu: url, jti: crypto.randomUUID(), ath: crypto.hash('sha256', token, 'base64url') })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .setIssuedAt()
      .sign(keys.privateKey);
    const v = verifier();
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'dpop_proof_required' });
    const claims = await v.verify(token, { dpop: { proof, method: 'GET', url } });
    expect(actingAgent(claims)).toBe(summarizer.id);
  });

  it('narrows to the requested scope and a shorter requested_lifetime, never past the ceiling', async () => {
    const subject = await personToken();
    const actor = await actorToken(summarizer);
    const res = await exchange(subject, actor, {
      scope: 'operator agent:summarizer:inject thread:42:view agent:summarizer:pause',
      resource: AUDIENCE,
      requested_lifetime: '60',
    });
    expect(res.expires_in).toBeLessThanOrEqual(60);
    const claims = await verifier().verify(res.access_token);
    // operator requested, capped at viewer (the agent's max-role); of what operator implies, the
    // grants both the person and the agent hold stay (view-config on this agent); pause is outside
    // the person's rights: dropped; thread:42:view comes with viewer.
    expect(claims.roles).toEqual(['viewer']);
    expect(claims.permissions).toEqual(['agent:summarizer:inject', 'agent:summarizer:view-config']);
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(60);
    // Only permissions asked for: no role requested, no role carried.
    const only = await verifier().verify((await exchange(subject, actor, { scope: 'thread:42:view' })).access_token);
    expect(only.roles).toEqual([]);
    expect(only.permissions).toEqual(['thread:42:view']);
    expect(can(only, 'thread:7:view')).toBe(false);
  });

  it('nests: a delegated token exchanged for a sub-agent narrows again, act chains newest outermost', async () => {
    const subject = await personToken();
    const first = await exchange(subject, await actorToken(summarizer));
    const second = await exchange(first.access_token, await actorToken(helper), { scope: 'agent:summarizer:inject thread:42:view owner' });
    const claims = await verifier().verify(second.access_token);
    expect(claims.sub).toBe(person.id);
    expect(claims.act).toEqual({ sub: helper.id, act: { sub: summarizer.id } });
    expect(actorChain(claims)).toEqual([helper.id, summarizer.id]);
    expect(actingAgent(claims)).toBe(helper.id);
    // helper has no max-role: no role, whatever is requested; thread:42:view came from viewer in the parent.
    expect(claims.roles).toEqual([]);
    expect(claims.permissions).toEqual(['agent:summarizer:inject', 'thread:42:view']);
    expect(claims.exp).toBeLessThanOrEqual((await verifier().verify(first.access_token)).exp);
    // Never wider than the parent: asking the parent's agent for what helper has but the parent lacks gives nothing more.
    const narrow = await exchange(second.access_token, await actorToken(summarizer));
    const c3 = await verifier().verify(narrow.access_token);
    expect(c3.permissions).toEqual(['agent:summarizer:inject', 'thread:42:view']);
    expect(c3.roles).toEqual([]);
    expect(actorChain(c3)).toEqual([summarizer.id, helper.id, summarizer.id]);
    // Depth 3 reached (the default): a fourth actor is refused.
    expect(await refused(exchange(narrow.access_token, await actorToken(helper)))).toMatchObject({
      error: 'invalid_grant',
      description: expect.stringMatching(/deeper than 3/),
    });
  });

  it('gatehouse/verify: allowDelegated false refuses a delegated token; the actor token is refused by the agentserver verifier', async () => {
    const subject = await personToken();
    const actor = await actorToken(summarizer);
    const delegated = (await exchange(subject, actor)).access_token;
    const err = await verifier()
      .verify(delegated, { allowDelegated: false })
      .catch((e) => e);
    expect(err).toBeInstanceOf(VerifyError);
    expect(err.code).toBe('delegated_token');
    // The person's own token passes the same check.
    await expect(verifier().verify(subject, { allowDelegated: false })).resolves.toMatchObject({ sub: person.id });
    // The actor token is for Gatehouse only.
    const actorErr = await verifier()
      .verify(actor)
      .catch((e) => e);
    expect(actorErr.code).toBe('wrong_audience');
    // Even a verifier whose audience is Gatehouse's issuer refuses it, by its shape.
    const sameAudience = await createVerifier({ issuer: s.url, audience: s.url })
      .verify(actor)
      .catch((e) => e);
    expect(sameAudience.code).toBe('actor_token');
    // And it carries no grant of its own.
    const raw = JSON.parse(Buffer.from(actor.split('.')[1]!, 'base64url').toString());
    expect(raw).toMatchObject({ sub: summarizer.id, client_id: summarizer.id, aud: s.url });
    expect(raw.permissions).toBeUndefined();
    expect(raw.roles).toBeUndefined();
  });

  it('refuses: a client without the grant (unauthorized_client), a foreign, expired or non-person subject token (invalid_grant)', async () => {
    const subject = await personToken();
    const actor = await actorToken(summarizer);
    expect(await refused(exchange(subject, actor, {}, await configFor(plainService)))).toMatchObject({
      error: 'unauthorized_client',
      status: 400,
    });

    // Foreign: a token of the same shape signed by a key Gatehouse never published.
    const { privateKey } = await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const { SignJWT } = await import('jose');
    const payload = JSON.parse(Buffer.from(subject.split('.')[1]!, 'base64url').toString());
    const header = JSON.parse(Buffer.from(subject.split('.')[0]!, 'base64url').toString());
    const foreign = await new SignJWT(payload).setProtectedHeader(header).sign(privateKey);
    expect(await refused(exchange(foreign, actor))).toMatchObject({ error: 'invalid_grant' });
    // Expired: the same claims with exp in the past, signed by Gatehouse's own current key.
    const keys = s.gatehouse.keys();
    const jwk = keys.signing.find((k) => k.kid === header.kid)!;
    const key = await (await import('jose')).importJWK(jwk as any, header.alg);
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ ...payload, iat: now - 1000, exp: now - 100 }).setProtectedHeader(header).sign(key);
    expect(await refused(exchange(expired, actor))).toMatchObject({
      error: 'invalid_grant',
      description: expect.stringMatching(/expired/),
    });
    // A service token is nobody's: not a subject.
    const svc = (await oidc.clientCredentialsGrant(await configFor(plainService))).access_token;
    expect(await refused(exchange(svc, actor))).toMatchObject({ error: 'invalid_grant', description: expect.stringMatching(/person/) });
    // An actor token as the subject.
    expect(await refused(exchange(actor, actor))).toMatchObject({ error: 'invalid_grant' });
    // Garbage.
    expect(await refused(exchange('not-a-token', actor))).toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses: an actor token that is not an agent token, a disabled or deleted agent, a disabled person (invalid_grant)', async () => {
    const subject = await personToken();
    // A person token or a service token as the actor.
    expect(await refused(exchange(subject, subject))).toMatchObject({ error: 'invalid_grant' });
    const svc = (await oidc.clientCredentialsGrant(await configFor(plainService))).access_token;
    expect(await refused(exchange(subject, svc))).toMatchObject({ error: 'invalid_grant' });

    // A disabled agent: its actor token (issued before) no longer works, nor do its credentials.
    const db = s.gatehouse.db.kysely;
    const a = await createAgent(db, { name: 'short-lived', permissions: ['thread:*:view'] });
    const creds = { id: a.agent_id, secret: a.client_secret! };
    const actor = await actorToken(creds);
    await exchange(subject, actor);
    await setAgentDisabled(db, creds.id, true);
    const disabled = await eventually(
      () => refused(exchange(subject, actor)).catch(() => null),
      (r) => r !== null,
      'the disabled agent to be refused',
    );
    expect(disabled).toMatchObject({ error: 'invalid_grant', description: expect.stringMatching(/agent is disabled/) });
    await expect(actorToken(creds)).rejects.toMatchObject({ status: 401, cause: [{ parameters: { error: 'invalid_client' } }] });
    // A delegated token whose earlier actor was disabled cannot be exchanged further.
    await setAgentDisabled(db, creds.id, false);
    const delegated = await eventually(
      () => exchange(subject, actor).catch(() => null),
      (r) => r !== null,
      'the agent enabled again',
    );
    await setAgentDisabled(db, creds.id, true);
    const helperActor = await actorToken(helper);
    const nested = await eventually(
      () => refused(exchange(delegated!.access_token, helperActor)).catch(() => null),
      (r) => r !== null,
      'an earlier actor disabled',
    );
    expect(nested).toMatchObject({ error: 'invalid_grant', description: expect.stringMatching(/earlier actor/) });

    // A disabled person.
    const other = await createPerson(s, `deleg-disabled-${backend}@example.com`, 'viewer');
    const theirs = await signIn(other);
    await disableAccount(s.gatehouse.db.kysely, other.id);
    expect(await refused(exchange(theirs, await actorToken(summarizer)))).toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses an empty intersection (invalid_scope), an unknown resource (invalid_target), bad token types (invalid_request)', async () => {
    const subject = await personToken();
    const actor = await actorToken(summarizer);
    // The person may not pause; asking only for it leaves nothing.
    expect(await refused(exchange(subject, actor, { scope: 'agent:summarizer:pause' }))).toMatchObject({ error: 'invalid_scope' });
    // A word that is no permission.
    expect(await refused(exchange(subject, actor, { scope: 'everything' }))).toMatchObject({ error: 'invalid_scope' });
    // An agent whose ceiling shares nothing with the person.
    const db = s.gatehouse.db.kysely;
    const a = await createAgent(db, { name: 'secrets', permissions: ['secret:*:view'] });
    const lonely = await actorToken({ id: a.agent_id, secret: a.client_secret! });
    expect(await refused(exchange(subject, lonely))).toMatchObject({ error: 'invalid_scope' });

    expect(await refused(exchange(subject, actor, { resource: 'https://elsewhere.example.com' }))).toMatchObject({
      error: 'invalid_target',
    });
    expect(await refused(exchange(subject, actor, { audience: 'https://elsewhere.example.com' }))).toMatchObject({
      error: 'invalid_target',
    });
    const wrongType = await rawExchange(agentserver, {
      subject_token: subject,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      actor_token: actor,
      actor_token_type: ACCESS,
    });
    expect(wrongType.status).toBe(400);
    expect(await wrongType.json()).toMatchObject({ error: 'invalid_request' });
    const missing = await rawExchange(agentserver, { subject_token: subject, subject_token_type: ACCESS });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ error: 'invalid_request' });
    const badLifetime = await rawExchange(agentserver, {
      subject_token: subject,
      subject_token_type: ACCESS,
      actor_token: actor,
      actor_token_type: ACCESS,
      requested_lifetime: '-5',
    });
    expect(await badLifetime.json()).toMatchObject({ error: 'invalid_request' });

    // Each refusal is audited as denied, without the tokens.
    await s.gatehouse.auditQueue.flush();
    const denied = await db
      .selectFrom('audit_event')
      .selectAll()
      .where('action', '=', 'token.exchange')
      .where('outcome', '=', 'denied')
      .execute();
    expect(denied.map((r) => (r.details as { error: string }).error)).toEqual(
      expect.arrayContaining(['invalid_scope', 'invalid_target', 'invalid_request', 'invalid_grant', 'unauthorized_client']),
    );
    for (const r of denied) expect(JSON.stringify(r.details)).not.toMatch(/eyJ/);
  });

  it('goes through the client token budget like every grant at /token', async () => {
    const db = s.gatehouse.db.kysely;
    const limited = await createClient(db, { name: 'limited', grants: ['client_credentials', 'token_exchange'], rateLimit: 2 });
    const config = await configFor({ id: limited.client_id, secret: limited.client_secret! });
    const subject = await personToken();
    const actor = await actorToken(summarizer);
    await exchange(subject, actor, {}, config);
    await exchange(subject, actor, {}, config);
    const over = await rawExchange(
      { id: limited.client_id, secret: limited.client_secret! },
      { subject_token: subject, subject_token_type: ACCESS, actor_token: actor, actor_token_type: ACCESS },
    );
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toMatch(/^\d+$/);
  });

  it('a signed-out person: the delegated token dies online with the grant, and no new exchange works', async () => {
    const subject = await personToken();
    const delegated = (await exchange(subject, await actorToken(summarizer))).access_token;
    const online = createVerifier({
      issuer: s.url,
      audience: AUDIENCE,
      introspection: { clientId: agentserver.id, clientSecret: agentserver.secret, cacheMs: 0 },
    });
    await expect(online.verify(delegated, { online: true })).resolves.toMatchObject({ sub: person.id });
    // End every session of the person (what a password change or "end all sessions" does).
    await endAllSessions(s.gatehouse.db.kysely, person.id);
    await expect(online.verify(delegated, { online: true })).rejects.toMatchObject({ code: 'inactive' });
    expect(await refused(exchange(subject, await actorToken(summarizer)))).toMatchObject({
      error: 'invalid_grant',
      description: expect.stringMatching(/no longer active/),
    });
  });
});

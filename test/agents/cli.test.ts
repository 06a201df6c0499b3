// `gatehouse agents …` and `clients create --grant token_exchange` as an operator runs them, against
// a running server: what each prints, what the server then accepts, and the audit rows.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit } from '../../src/audit/query.ts';
import { gatehouse } from '../helpers/cli.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

describe('gatehouse agents (CLI, PostgreSQL)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('postgres');
  });
  afterAll(() => s?.close());

  const config = (id: string, auth: oidc.ClientAuth) =>
    oidc.discovery(new URL(s.url), id, undefined, auth, { execute: [oidc.allowInsecureRequests] });
  const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString());
  async function lastEvent(action: string) {
    await s.gatehouse.auditQueue.flush();
    return (await listAudit(s.gatehouse.db.kysely, { action, limit: 1 })).events[0];
  }

  it('creates, lists, rotates, disables and deletes an agent; its credentials give only an actor token', async () => {
    const created = await gatehouse(
      [
        'agents',
        'create',
        '--name',
        'summarizer',
        '--permission',
        'agent:summarizer:*',
        '--permission',
        'thread:*:view',
        '--max-role',
        'operator',
        '--json',
      ],
      s.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const agent = JSON.parse(created.stdout) as { agent_id: string; client_secret: string };
    expect(agent.agent_id).toMatch(/^agt_/);
    expect(agent.client_secret.length).toBeGreaterThanOrEqual(43);
    const event = await lastEvent('agent.create');
    expect(event).toMatchObject({ target: agent.agent_id, actor: 'cli' });
    expect(JSON.stringify(event)).not.toContain(agent.client_secret);

    const token = await oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.ClientSecretBasic(agent.client_secret)));
    const claims = claimsOf(token.access_token);
    expect(claims).toMatchObject({ sub: agent.agent_id, client_id: agent.agent_id, aud: s.url });
    expect(claims.permissions).toBeUndefined();
    // The agentserver's audience is refused as a resource for an agent.
    await expect(
      oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.ClientSecretBasic(agent.client_secret)), {
        resource: 'https://agents.example.com',
      }),
    ).rejects.toMatchObject({ error: 'invalid_target' });

    const list = JSON.parse((await gatehouse(['agents', 'list', '--json'], s.env)).stdout) as { agents: any[] };
    expect(list.agents).toEqual([
      expect.objectContaining({
        agent_id: agent.agent_id,
        name: 'summarizer',
        max_role: 'operator',
        permissions: ['agent:summarizer:*', 'thread:*:view'],
        disabled: false,
      }),
    ]);
    // Agents are not listed among clients.
    const clients = JSON.parse((await gatehouse(['clients', 'list', '--json'], s.env)).stdout) as { clients: any[] };
    expect(clients.clients.map((c) => c.client_id)).not.toContain(agent.agent_id);

    const rotated = await gatehouse(['agents', 'rotate-secret', '--agent-id', agent.agent_id, '--overlap', '0', '--json'], s.env);
    expect(rotated.code, rotated.stderr).toBe(0);
    const fresh = JSON.parse(rotated.stdout).client_secret as string;
    await s.gatehouse.refresh();
    await expect(
      oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.ClientSecretBasic(agent.client_secret))),
    ).rejects.toMatchObject({ status: 401 });
    await oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.ClientSecretBasic(fresh)));
    expect(await lastEvent('agent.secret_rotate')).toMatchObject({ target: agent.agent_id });

    expect((await gatehouse(['agents', 'disable', '--agent-id', agent.agent_id], s.env)).code).toBe(0);
    await s.gatehouse.refresh();
    await expect(oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.ClientSecretBasic(fresh)))).rejects.toMatchObject({
      status: 401,
    });
    expect((await gatehouse(['agents', 'enable', '--agent-id', agent.agent_id], s.env)).code).toBe(0);
    await s.gatehouse.refresh();
    await oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.ClientSecretBasic(fresh)));

    expect((await gatehouse(['agents', 'delete', '--agent-id', agent.agent_id], s.env)).code).toBe(0);
    await s.gatehouse.refresh();
    await expect(oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.ClientSecretBasic(fresh)))).rejects.toMatchObject({
      status: 401,
    });
    for (const action of ['agent.disable', 'agent.enable', 'agent.delete'])
      expect(await lastEvent(action)).toMatchObject({ target: agent.agent_id });
  }, 300_000);

  it('registers an agent that signs its assertion (private_key_jwt)', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-jwks-'));
    const file = path.join(dir, 'jwks.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig', kid: 'k1' }] }));
    const created = await gatehouse(
      ['agents', 'create', '--name', 'signer', '--permission', 'thread:*:view', '--auth', 'private_key_jwt', '--jwks-file', file, '--json'],
      s.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const agent = JSON.parse(created.stdout);
    expect(agent.client_secret).toBeUndefined();
    const token = await oidc.clientCredentialsGrant(await config(agent.agent_id, oidc.PrivateKeyJwt({ key: privateKey, kid: 'k1' })));
    expect(claimsOf(token.access_token)).toMatchObject({ sub: agent.agent_id, aud: s.url });
  });

  it('refuses bad input with a clear message: no ceiling, a bad permission or role; token_exchange only for services', async () => {
    const none = await gatehouse(['agents', 'create', '--name', 'x', '--json'], s.env);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/at least one --permission or a --max-role/);
    const badPerm = await gatehouse(['agents', 'create', '--name', 'x', '--permission', 'everything'], s.env);
    expect(badPerm.stderr).toMatch(/<kind>:<id>:<action>/);
    const badRole = await gatehouse(['agents', 'create', '--name', 'x', '--max-role', 'god'], s.env);
    expect(badRole.stderr).toMatch(/is not a role/);
    const unknown = await gatehouse(['agents', 'delete', '--agent-id', 'svc_nope'], s.env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no agent/);

    const exchanger = await gatehouse(
      ['clients', 'create', '--name', 'agentserver', '--grant', 'client_credentials', '--grant', 'token_exchange', '--json'],
      s.env,
    );
    expect(exchanger.code, exchanger.stderr).toBe(0);
    const listed = JSON.parse((await gatehouse(['clients', 'list', '--json'], s.env)).stdout) as { clients: any[] };
    expect(listed.clients.find((c) => c.client_id === JSON.parse(exchanger.stdout).client_id).grants).toEqual([
      'client_credentials',
      'token_exchange',
    ]);
    const browser = await gatehouse(
      [
        'clients',
        'create',
        '--name',
        'app',
        '--grant',
        'authorization_code',
        '--grant',
        'token_exchange',
        '--redirect-uri',
        'https://app.example.com/cb',
      ],
      s.env,
    );
    expect(browser.code).toBe(2);
    expect(browser.stderr).toMatch(/token_exchange is for service clients/);
  }, 300_000);
});

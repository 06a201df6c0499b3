// An owner registering and deleting agents from the console over HTTP (PostgreSQL): the secret shown
// once works as the agent's credentials, bad input is refused with the reason, both are audited.
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit } from '../../src/audit/query.ts';
import { createPerson } from '../helpers/accounts.ts';
import { formField, type HttpAgent } from '../helpers/http-signin.ts';
import { adminOverHttp } from '../helpers/people.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

describe('agents page of the admin console (PostgreSQL)', () => {
  let s: TestServer;
  let agent: HttpAgent;
  let csrf: string;
  let ownerId: string;

  beforeAll(async () => {
    s = await startServer('postgres');
    const owner = await createPerson(s, 'agents-owner@example.com', 'owner');
    ownerId = owner.id;
    const signedIn = await adminOverHttp(s, owner);
    agent = signedIn.agent;
    csrf = formField(signedIn.landed.text, '_csrf')!;
  });
  afterAll(() => s?.close());

  const post = (path: string, form: Record<string, string> = {}) => agent.request(path, { form: { _csrf: csrf, ...form } });

  it('registers an agent, shows its secret once, lists it, deletes it; refuses an agent without a ceiling', async () => {
    const page = await agent.request('/admin/agents');
    expect(page.status).toBe(200);
    expect(page.text).toContain('Register an agent');

    const created = await post('/admin/agents', {
      name: 'summarizer',
      permissions: 'agent:summarizer:*\nthread:*:view',
      max_role: 'viewer',
    });
    expect(created.status).toBe(200);
    const agentId = /data-agent-id>([^<]+)</.exec(created.text)![1]!;
    const secret = /id="client-secret"[^>]*value="([^"]+)"/.exec(created.text)![1]!;
    expect(agentId).toMatch(/^agt_/);
    const config = await oidc.discovery(new URL(s.url), agentId, undefined, oidc.ClientSecretBasic(secret), {
      execute: [oidc.allowInsecureRequests],
    });
    const token = await oidc.clientCredentialsGrant(config);
    expect(JSON.parse(Buffer.from(token.access_token.split('.')[1]!, 'base64url').toString())).toMatchObject({ sub: agentId, aud: s.url });

    const listed = await agent.request('/admin/agents');
    expect(listed.text).toContain(agentId);
    expect(listed.text).toContain('agent:summarizer:*');
    expect(listed.text).not.toContain(secret);
    const [event] = (await listAudit(s.gatehouse.db.kysely, { action: 'agent.create', limit: 1 })).events;
    expect(event).toMatchObject({ actor: ownerId, target: agentId, outcome: 'success' });
    expect(JSON.stringify(event)).not.toContain(secret);

    const bad = await post('/admin/agents', { name: 'nothing', permissions: '', max_role: '' });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/at least one --permission or a --max-role/);

    const del = await post(`/admin/agents/${agentId}/delete`);
    expect(del.status).toBe(303);
    expect(del.location).toContain('done=agent_deleted');
    await s.gatehouse.refresh();
    await expect(oidc.clientCredentialsGrant(config)).rejects.toMatchObject({ status: 401 });
    expect((await listAudit(s.gatehouse.db.kysely, { action: 'agent.delete', limit: 1 })).events[0]).toMatchObject({ target: agentId });
  });
});

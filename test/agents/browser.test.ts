// The whole story in a real browser (Chromium, PostgreSQL): a person signs in to the agentserver's
// GUI with password and authenticator code, the agentserver's back end exchanges the person's access
// token for an agent (openid-client), and the agent's token verifies offline with act and the
// intersection.
import * as oidc from 'openid-client';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agents.service.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { actingAgent, can, createVerifier } from '../../src/verify/index.ts';
import { createPerson } from '../helpers/accounts.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startRelyingParty, type RelyingParty } from '../helpers/relying-party.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';

describe('delegation after a browser sign-in (PostgreSQL)', () => {
  let browser: Browser;
  let s: TestServer;
  let rp: RelyingParty;

  beforeAll(async () => {
    [browser, s] = await Promise.all([launchBrowser(), startServer('postgres')]);
    const port = await freePort();
    const app = await createClient(s.gatehouse.db.kysely, {
      name: 'Agent console',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: [`http://127.0.0.1:${port}/callback`],
    });
    rp = await startRelyingParty(s.url, app, port);
  });
  afterAll(async () => {
    await browser?.close();
    await rp?.close();
    await s?.close();
  });

  it('a person signs in on the page; the agentserver exchanges the token; the agent token verifies offline', async () => {
    const db = s.gatehouse.db.kysely;
    const person = await createPerson(s, 'grace@example.com', 'operator', ['thread:42:view']);
    const exchangerClient = await createClient(db, { name: 'agentserver', grants: ['client_credentials', 'token_exchange'] });
    const agent = await createAgent(db, { name: 'summarizer', permissions: ['agent:summarizer:*', 'thread:42:view'] });

    const page = await (await browser.newContext()).newPage();
    const flow = await rp.start();
    await page.goto(flow.url);
    await page.getByLabel('Email').fill(person.email);
    await page.getByLabel('Password').fill(person.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByLabel('Authentication code').fill(await person.nextCode());
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(/127\.0\.0\.1:\d+\/callback/);
    const tokens = await rp.finish(new URL(page.url()), flow);

    const discover = (id: string, secret: string) =>
      oidc.discovery(new URL(s.url), id, undefined, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] });
    const actor = await oidc.clientCredentialsGrant(await discover(agent.agent_id, agent.client_secret!));
    const delegated = await oidc.genericGrantRequest(
      await discover(exchangerClient.client_id, exchangerClient.client_secret!),
      'urn:ietf:params:oauth:grant-type:token-exchange',
      {
        subject_token: tokens.access_token,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        actor_token: actor.access_token,
        actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      },
    );
    const claims = await createVerifier({ issuer: s.url, audience: 'https://agents.example.com' }).verify(delegated.access_token);
    expect(claims.sub).toBe(person.id);
    expect(actingAgent(claims)).toBe(agent.agent_id);
    expect(claims.roles).toEqual([]);
    expect(claims.permissions).toEqual(['agent:summarizer:inject', 'agent:summarizer:view-config', 'thread:42:view']);
    expect(can(claims, 'agent:summarizer:inject')).toBe(true);
    expect(can(claims, 'agent:other:inject')).toBe(false);
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
  });
});

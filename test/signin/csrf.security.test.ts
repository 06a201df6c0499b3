// Cross-site request forgery on the sign-in forms: a token lifted from one interaction does not
// open another, and a POST with `Origin: null` (sandboxed frame, data: or file: page) is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.service.ts';
import { createPerson, type TestPerson } from '../helpers/accounts.ts';
import { BACKENDS } from '../helpers/db.ts';
import { formField, HttpAgent, type Step } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'https://app.example.com/callback';

describe.each(BACKENDS)('CSRF tokens on %s', (backend) => {
  let s: TestServer;
  let app: { client_id: string };
  let person: TestPerson;

  beforeAll(async () => {
    s = await startServer(backend);
    app = await createClient(s.gatehouse.db.kysely, { name: 'app', grants: ['authorization_code'], redirectUris: [REDIRECT] });
    person = await createPerson(s, 'cy@example.com', 'viewer');
  });
  afterAll(() => s?.close());

  async function signInPage(agent: HttpAgent): Promise<{ page: Step; uid: string; csrf: string }> {
    const q = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: REDIRECT,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    });
    const page = await agent.follow(await agent.request(`/auth?${q}`));
    const uid = /\/interaction\/([^/"?]+)/.exec(page.url)![1]!;
    return { page, uid, csrf: formField(page.text, '_csrf')! };
  }

  it('refuses a token from one interaction on another, in the same browser', async () => {
    const agent = new HttpAgent(s.url);
    const a = await signInPage(agent);
    const b = await signInPage(agent);
    expect(a.uid).not.toBe(b.uid);
    const crossed = await agent.request(`/interaction/${b.uid}/login`, {
      form: { _csrf: a.csrf, email: person.email, password: person.password },
    });
    expect(crossed.status).toBe(403);
    // The token of that interaction still works there.
    const own = await agent.follow(
      await agent.request(`/interaction/${b.uid}/login`, { form: { _csrf: b.csrf, email: person.email, password: person.password } }),
    );
    expect(own.status).toBe(200);
    expect(own.text).toContain(`data-location="/interaction/${b.uid}/second-factor"`);
  });

  it('refuses Origin: null and a foreign origin, and accepts its own', async () => {
    const agent = new HttpAgent(s.url);
    const { uid, csrf } = await signInPage(agent);
    const form = { _csrf: csrf, email: person.email, password: person.password };
    for (const origin of ['null', 'https://evil.example.com']) {
      const res = await agent.request(`/interaction/${uid}/login`, { form, headers: { origin } });
      expect(res.status, origin).toBe(403);
    }
    const ok = await agent.follow(await agent.request(`/interaction/${uid}/login`, { form, headers: { origin: new URL(s.url).origin } }));
    expect(ok.status).toBe(200);
    expect(ok.text).toContain(`data-location="/interaction/${uid}/second-factor"`);
  });

  it("tells browsers to send the origin on Gatehouse's own forms and no Referer elsewhere", async () => {
    const { page } = await signInPage(new HttpAgent(s.url));
    expect(page.headers.get('referrer-policy')).toBe('same-origin');
    expect(page.text).not.toContain('content="no-referrer"');
  });
});

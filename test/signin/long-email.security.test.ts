// Long emails at the sign-in form: a valid address of up to 254 octets (RFC 5321 §4.5.3.1.3) is
// an ordinary failed sign-in, a longer one is refused as invalid, and neither reaches the
// rate-limit store as a key too long for its column (it answered 500 on PostgreSQL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeEmail } from '../../src/accounts/email.ts';
import { createClient } from '../../src/clients/clients.service.ts';
import { BACKENDS } from '../helpers/db.ts';
import { alertText, formField, HttpAgent } from '../helpers/http-signin.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REDIRECT = 'https://app.example.com/callback';
const address = (octets: number) => `${'a'.repeat(octets - '@example.com'.length)}@example.com`;

describe.each(BACKENDS)('long emails at sign-in on %s', (backend) => {
  let s: TestServer;
  let app: { client_id: string };

  beforeAll(async () => {
    s = await startServer(backend);
    app = await createClient(s.gatehouse.db.kysely, { name: 'app', grants: ['authorization_code'], redirectUris: [REDIRECT] });
  });
  afterAll(() => s?.close());

  async function tryPassword(email: string) {
    const agent = new HttpAgent(s.url);
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
    return agent.request(`/interaction/${uid}/login`, {
      form: { _csrf: formField(page.text, '_csrf')!, email, password: 'not the password' },
    });
  }

  // Three failed attempts in all from this test's one address: under the per-IP budget of 5 a minute.
  it('answers an ordinary failure for valid addresses of 231 and 254 octets', async () => {
    for (const octets of [231, 254]) {
      const email = address(octets);
      expect(normalizeEmail(email)).toBe(email);
      const res = await tryPassword(email);
      expect(res.status, `${octets} octets`).toBe(401);
      expect(alertText(res.text)).toBe('Incorrect email or password.');
    }
  });

  it('refuses an address over 254 characters at validation, and answers it like any failure', async () => {
    expect(() => normalizeEmail(address(255))).toThrow(/at most 254/);
    expect(() => normalizeEmail(address(400))).toThrow(/at most 254/);
    const res = await tryPassword(address(300));
    expect(res.status).toBe(401);
    expect(alertText(res.text)).toBe('Incorrect email or password.');
  });
});

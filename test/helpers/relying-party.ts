// The application a person signs in to: openid-client (a library nobody here wrote) doing the
// authorization code flow with PKCE against Gatehouse, with a real callback endpoint.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';

export interface RelyingParty {
  redirectUri: string;
  config: oidc.Configuration;
  /** Start a sign-in: the URL to open in the browser, and what the callback will need. */
  start(params?: Record<string, string>): Promise<{ url: string; verifier: string; state: string; nonce: string }>;
  /** The callback URL the browser last landed on. */
  waitForCallback(): Promise<URL>;
  /** Exchange the code of that callback (PKCE, state, nonce, iss checked by openid-client). */
  finish(
    callback: URL,
    flow: { verifier: string; state: string; nonce: string },
  ): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers>;
  refresh(refreshToken: string): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers>;
  close(): Promise<void>;
}

export async function startRelyingParty(
  issuer: string,
  client: { client_id: string; client_secret?: string },
  port?: number,
): Promise<RelyingParty> {
  let waiters: Array<(u: URL) => void> = [];
  let last: URL | null = null;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    if (url.pathname === '/callback') {
      last = url;
      waiters.forEach((w) => w(url));
      waiters = [];
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Signed in</title><h1>Back at the application</h1>');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(port ?? 0, '127.0.0.1', r));
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  const auth = client.client_secret ? oidc.ClientSecretBasic(client.client_secret) : oidc.None();
  const config = await oidc.discovery(new URL(issuer), client.client_id, undefined, auth, { execute: [oidc.allowInsecureRequests] });
  return {
    redirectUri,
    config,
    async start(params = {}) {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid email',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...params,
      });
      last = null;
      return { url: url.href, verifier, state, nonce };
    },
    waitForCallback() {
      return last ? Promise.resolve(last) : new Promise((r) => waiters.push(r));
    },
    finish(callback, flow) {
      return oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
      });
    },
    refresh(refreshToken) {
      return oidc.refreshTokenGrant(config, refreshToken);
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

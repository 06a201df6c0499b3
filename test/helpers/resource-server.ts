// A minimal agentserver: a protected resource that checks every request with gatehouse/verify,
// as the README tells the agentserver to (Bearer or DPoP scheme, the DPoP proof, the TLS client
// certificate). Answers 200 with the claims, or 401 with the VerifyError code.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { VerifyError, type Verifier } from '../../src/verify/index.ts';

export interface ResourceServer {
  url: string;
  /** The DPoP proofs the server received, in order (to replay one). */
  proofs: string[];
  close(): Promise<void>;
}

export async function startResourceServer(verifier: Verifier, tls?: { cert: Buffer; key: Buffer; ca: Buffer }): Promise<ResourceServer> {
  const proofs: string[] = [];
  let base = '';
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const auth = /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/.exec(req.headers.authorization ?? '');
    const answer = (status: number, body: unknown, challenge?: string) => {
      res.writeHead(status, { 'content-type': 'application/json', ...(challenge ? { 'www-authenticate': challenge } : {}) });
      res.end(JSON.stringify(body));
    };
    if (!auth) return answer(401, { error: 'no_token' }, 'Bearer');
    const [, scheme, token] = auth;
    const proof = req.headers.dpop;
    if (typeof proof === 'string') proofs.push(proof);
    const socket = req.socket as TLSSocket;
    const certificate = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
    try {
      const claims = await verifier.verify(token!, {
        ...(scheme === 'DPoP' ? { dpop: { proof: proof as string, method: req.method!, url: `${base}${req.url}` } } : {}),
        ...(certificate ? { certificate } : {}),
      });
      answer(200, claims);
    } catch (err) {
      if (!(err instanceof VerifyError)) return answer(500, { error: 'internal' });
      answer(401, { error: err.code }, `${scheme} error="invalid_token"`);
    }
  };
  const server = tls
    ? https.createServer({ ...tls, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  base = `${tls ? 'https' : 'http'}://localhost:${port}`;
  return {
    url: base,
    proofs,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

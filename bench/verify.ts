// Offline verifications/s through gatehouse/verify (JWKS from a local HTTP server, cached after
// the first fetch) against the baseline measured in the same run: bare jose.jwtVerify with the
// public key in hand. The ratio is what the module's key lookup and claim checks cost.
// Run: node bench/verify.ts
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { createVerifier } from '../src/verify/index.ts';
import { accessTokenClaims, AUDIENCE, measure } from './algorithms.ts';

export interface VerifyBenchResult {
  alg: string;
  verifierPerSec: number;
  baselinePerSec: number;
  /** verifierPerSec / baselinePerSec */
  ratio: number;
  /** JWKS fetches during the whole run: 1 if the cache works. */
  jwksFetches: number;
}

export async function runVerifyBench(durationMs = 1000): Promise<VerifyBenchResult> {
  const alg = 'ES256'; // Gatehouse's default access-token algorithm
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg, use: 'sig' };
  let jwksFetches = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/jwks') return void res.writeHead(404).end();
    jwksFetches++;
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const token = await new SignJWT({ ...accessTokenClaims(), iss: issuer })
      .setProtectedHeader({ alg, typ: 'at+jwt', kid: 'bench' })
      .sign(privateKey);
    const verifier = createVerifier({ issuer, audience: AUDIENCE });
    await verifier.verify(token); // the one JWKS fetch
    const options = {
      algorithms: [alg],
      typ: 'at+jwt',
      issuer,
      audience: AUDIENCE,
      clockTolerance: 30,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    };
    // Alternate the two and keep each one's best round, so that neither is favoured by running
    // first (JIT warm-up) or last (heat, other load).
    let baselinePerSec = 0;
    let verifierPerSec = 0;
    for (let round = 0; round < 2; round++) {
      baselinePerSec = Math.max(baselinePerSec, await measure(() => jwtVerify(token, publicKey, options), durationMs));
      verifierPerSec = Math.max(verifierPerSec, await measure(() => verifier.verify(token), durationMs));
    }
    return { alg, verifierPerSec, baselinePerSec, ratio: verifierPerSec / baselinePerSec, jwksFetches };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

if (import.meta.main) {
  const r = await runVerifyBench();
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(8);
  console.log(`${r.alg} access token, Node ${process.version}, one verification at a time, best of 2 × ~1 s`);
  console.log(`baseline  jose.jwtVerify, key in hand      ${fmt(r.baselinePerSec)} verifications/s`);
  console.log(`verifier  createVerifier, JWKS over HTTP   ${fmt(r.verifierPerSec)} verifications/s`);
  console.log(`ratio     verifier / baseline              ${r.ratio.toFixed(2).padStart(8)}`);
  console.log(`JWKS fetches during the run                ${String(r.jwksFetches).padStart(8)}`);
}

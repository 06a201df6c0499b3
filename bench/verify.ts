// Offline verifications/s through gatehouse/verify (JWKS from a local HTTP server, cached after
// the first fetch) against the baseline measured in the same run: bare jose.jwtVerify with the
// public key in hand. The ratio is what the module's key lookup and claim checks cost.
// The DPoP figure (runVerifyDpopBench) does the same with a DPoP-bound token and a fresh proof per
// request, against bare jose doing the same two verifications and the RFC 9449 §4.3 checks by hand.
// Run: node bench/verify.ts
import crypto from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, EmbeddedJWK, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWK } from 'jose';
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

export interface VerifyDpopBenchResult {
  /** gatehouse/verify: token + proof + binding + replay cache, JWKS cached. */
  verifierPerSec: number;
  /** bare jose: jwtVerify of the token (key in hand) and of the proof (EmbeddedJWK), the claim checks by hand, no replay cache. */
  baselinePerSec: number;
  ratio: number;
}

async function withJwksServer<T>(jwk: JWK, run: (issuer: string) => Promise<T>): Promise<T> {
  const server = createServer((req, res) => {
    if (req.url !== '/jwks') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export async function runVerifyDpopBench(durationMs = 1000): Promise<VerifyDpopBenchResult> {
  const alg = 'ES256';
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg, use: 'sig' };
  const holder = await generateKeyPair('ES256');
  const holderJwk = await exportJWK(holder.publicKey);
  const jkt = await calculateJwkThumbprint(holderJwk);
  const htu = 'https://agents.example.com/threads/1';
  return withJwksServer(jwk, async (issuer) => {
    const token = await new SignJWT({ ...accessTokenClaims(), iss: issuer, cnf: { jkt } })
      .setProtectedHeader({ alg, typ: 'at+jwt', kid: 'bench' })
      .sign(privateKey);
    const ath = crypto.hash('sha256', token, 'base64url');
    const makeProof = () =>
      new SignJWT({ htm: 'GET', htu, jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000), ath })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: holderJwk })
        .sign(holder.privateKey);
    // Every request carries a proof of its own (a jti is single use): made before the clock starts.
    const pool: string[] = [];
    for (let i = 0; i < 20_000; i++) pool.push(await makeProof());
    const options = {
      algorithms: [alg],
      typ: 'at+jwt',
      issuer,
      audience: AUDIENCE,
      clockTolerance: 30,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    };
    const proofOnce = pool[0]!;
    const bare = async () => {
      const { payload: claims } = await jwtVerify(token, publicKey, options);
      const { payload, protectedHeader } = await jwtVerify(proofOnce, EmbeddedJWK, { algorithms: ['ES256'], typ: 'dpop+jwt' });
      const now = Math.floor(Date.now() / 1000);
      if (payload.htm !== 'GET' || payload.htu !== htu || payload.ath !== crypto.hash('sha256', token, 'base64url'))
        throw new Error('proof');
      if (typeof payload.iat !== 'number' || payload.iat < now - 90 || payload.iat > now + 30) throw new Error('iat');
      if ((await calculateJwkThumbprint(protectedHeader.jwk!)) !== (claims.cnf as { jkt: string }).jkt) throw new Error('jkt');
    };
    let baselinePerSec = 0;
    let verifierPerSec = 0;
    for (let round = 0; round < 2; round++) {
      // A new verifier each round: a fresh replay cache, so the pool's proofs are new to it.
      const verifier = createVerifier({ issuer, audience: AUDIENCE });
      let next = 0;
      const take = () => {
        if (next >= pool.length) throw new Error('proof pool too small for this machine: raise it');
        return pool[next++]!;
      };
      baselinePerSec = Math.max(baselinePerSec, await measure(bare, durationMs));
      verifierPerSec = Math.max(
        verifierPerSec,
        await measure(() => verifier.verify(token, { dpop: { proof: take(), method: 'GET', url: htu } }), durationMs),
      );
    }
    return { verifierPerSec, baselinePerSec, ratio: verifierPerSec / baselinePerSec };
  });
}

if (import.meta.main) {
  const d = await runVerifyDpopBench();
  const fmt0 = (n: number) => Math.round(n).toLocaleString('en-US').padStart(8);
  console.log(`DPoP-bound ES256 token + ES256 proof, one verification at a time, best of 2 × ~1 s`);
  console.log(`baseline  jose: token + proof + checks      ${fmt0(d.baselinePerSec)} verifications/s`);
  console.log(`verifier  verify(token, { dpop })          ${fmt0(d.verifierPerSec)} verifications/s`);
  console.log(`ratio     verifier / baseline              ${d.ratio.toFixed(2).padStart(8)}`);
  const r = await runVerifyBench();
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(8);
  console.log(`${r.alg} access token, Node ${process.version}, one verification at a time, best of 2 × ~1 s`);
  console.log(`baseline  jose.jwtVerify, key in hand      ${fmt(r.baselinePerSec)} verifications/s`);
  console.log(`verifier  createVerifier, JWKS over HTTP   ${fmt(r.verifierPerSec)} verifications/s`);
  console.log(`ratio     verifier / baseline              ${r.ratio.toFixed(2).padStart(8)}`);
  console.log(`JWKS fetches during the run                ${String(r.jwksFetches).padStart(8)}`);
}

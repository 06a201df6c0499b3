// Signs/s and verifies/s per access-token algorithm, with jose, on this machine: the figures
// behind the choice of ES256 as the default (docs/architecture.md, "Tokens and claims").
// Run: node bench/algorithms.ts
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { generateKeyPair, jwtVerify, SignJWT } from 'jose';

export interface Row {
  alg: string;
  key: string;
  signsPerSec: number;
  verifiesPerSec: number;
  tokenBytes: number;
}

const ALGORITHMS = [
  { alg: 'ES256', key: 'P-256', options: {} },
  { alg: 'EdDSA', key: 'Ed25519', options: { crv: 'Ed25519' } },
  { alg: 'RS256', key: 'RSA 2048', options: { modulusLength: 2048 } },
  { alg: 'PS256', key: 'RSA 2048', options: { modulusLength: 2048 } },
] as const;

export const ISSUER = 'https://id.example.com';
export const AUDIENCE = 'https://agents.example.com';

/** A token shaped like the access token of docs/architecture.md ("Tokens and claims"), so that sizes and hashing costs are realistic. */
export function accessTokenClaims(): Record<string, unknown> {
  const iat = Math.floor(Date.now() / 1000);
  return {
    iss: ISSUER,
    sub: `usr_${randomUUID()}`,
    aud: AUDIENCE,
    client_id: 'agentserver-ui',
    scope: 'openid agents',
    iat,
    exp: iat + 900,
    jti: randomUUID(),
    roles: ['operator'],
    permissions: ['agent:summarizer:inject', 'thread:*:view'],
    auth_time: iat - 60,
    acr: 'urn:gatehouse:acr:mfa',
    amr: ['pwd', 'otp'],
    sid: randomUUID(),
  };
}

/** Operations per second of `op`, run back to back for `durationMs` after `warmupMs`. */
export async function measure(op: () => Promise<unknown>, durationMs = 1000, warmupMs = 200): Promise<number> {
  for (let end = performance.now() + warmupMs; performance.now() < end;) await op();
  let count = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < durationMs) {
    await op();
    count++;
    if ((count & 15) === 0) elapsed = performance.now() - start; // keep the clock out of the loop
  }
  elapsed = performance.now() - start;
  return (count * 1000) / elapsed;
}

export async function runAlgorithmBench(durationMs = 1000): Promise<Row[]> {
  const rows: Row[] = [];
  for (const { alg, key, options } of ALGORITHMS) {
    const { privateKey, publicKey } = await generateKeyPair(alg, options);
    const claims = accessTokenClaims();
    const sign = () => new SignJWT(claims).setProtectedHeader({ alg, typ: 'at+jwt', kid: 'bench' }).sign(privateKey);
    const token = await sign();
    // The same checks the verifier makes, so the figure is a verification, not a bare signature.
    const verifyOptions = { algorithms: [alg], typ: 'at+jwt', issuer: ISSUER, audience: AUDIENCE };
    const signsPerSec = await measure(sign, durationMs);
    const verifiesPerSec = await measure(() => jwtVerify(token, publicKey, verifyOptions), durationMs);
    rows.push({ alg, key, signsPerSec, verifiesPerSec, tokenBytes: token.length });
  }
  return rows;
}

export function formatRows(rows: readonly Row[]): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(10);
  const lines = [`${'alg'.padEnd(7)} ${'key'.padEnd(9)} ${'signs/s'.padStart(10)} ${'verifies/s'.padStart(10)} ${'bytes'.padStart(6)}`];
  for (const r of rows) {
    lines.push(`${r.alg.padEnd(7)} ${r.key.padEnd(9)} ${fmt(r.signsPerSec)} ${fmt(r.verifiesPerSec)} ${String(r.tokenBytes).padStart(6)}`);
  }
  return lines.join('\n');
}

if (import.meta.main) {
  console.log(`jose, Node ${process.version}, ${process.arch}; one operation at a time, ~1 s each after a warm-up`);
  console.log(formatRows(await runAlgorithmBench()));
}

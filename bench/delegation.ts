// Offline verification of a delegated token (RFC 8693, an `act` chain three agents deep, the
// default GATEHOUSE_DELEGATION_MAX_DEPTH) through gatehouse/verify, beside the same verifier on a
// person's token and bare jose.jwtVerify on the delegated token, all measured in this run. The
// ratios are what parsing `act` and reading the chain cost.
// Run: node bench/delegation.ts
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { actorChain, can, createVerifier } from '../src/verify/index.ts';
import { accessTokenClaims, AUDIENCE, measure } from './algorithms.ts';

export interface DelegationBenchResult {
  personPerSec: number;
  delegatedPerSec: number;
  baselinePerSec: number;
  /** delegatedPerSec / personPerSec */
  ratio: number;
}

export async function runDelegationBench(durationMs = 1000): Promise<DelegationBenchResult> {
  const alg = 'ES256';
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg, use: 'sig' }] };
  const base = accessTokenClaims();
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg, typ: 'at+jwt', kid: 'bench' }).sign(privateKey);
  const person = await sign(base);
  const delegated = await sign({
    ...base,
    act: { sub: 'agt_helper0000000000000000', act: { sub: 'agt_summarizer00000000000', act: { sub: 'agt_router000000000000000' } } },
    roles: [],
    permissions: ['agent:summarizer:inject', 'thread:42:view'],
  });
  const verifier = createVerifier({ issuer: base.iss as string, audience: AUDIENCE, jwks });
  const options = { algorithms: [alg], typ: 'at+jwt', issuer: base.iss as string, audience: AUDIENCE, clockTolerance: 30 };
  const delegatedUse = async () => {
    const c = await verifier.verify(delegated);
    return can(c, 'agent:summarizer:inject') && actorChain(c).length;
  };
  let personPerSec = 0;
  let delegatedPerSec = 0;
  let baselinePerSec = 0;
  for (let round = 0; round < 2; round++) {
    baselinePerSec = Math.max(baselinePerSec, await measure(() => jwtVerify(delegated, publicKey, options), durationMs));
    personPerSec = Math.max(personPerSec, await measure(() => verifier.verify(person), durationMs));
    delegatedPerSec = Math.max(delegatedPerSec, await measure(delegatedUse, durationMs));
  }
  return { personPerSec, delegatedPerSec, baselinePerSec, ratio: delegatedPerSec / personPerSec };
}

export function formatDelegation(r: DelegationBenchResult): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(8);
  return [
    `baseline   jose.jwtVerify, delegated token            ${fmt(r.baselinePerSec)} verifications/s`,
    `person     gatehouse/verify, person token             ${fmt(r.personPerSec)} verifications/s`,
    `delegated  gatehouse/verify + can + actorChain (3 deep) ${fmt(r.delegatedPerSec)} verifications/s`,
    `ratio      delegated / person                         ${r.ratio.toFixed(2).padStart(8)}`,
  ].join('\n');
}

if (import.meta.main) console.log(formatDelegation(await runDelegationBench()));

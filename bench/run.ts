// `npm run bench`: every benchmark, each with its baseline measured in the same run.
import { formatRows, runAlgorithmBench } from './algorithms.ts';
import { runVerifyBench, runVerifyDpopBench } from './verify.ts';
import { formatTokenRows, runTokenBench } from './tokens.ts';
import { formatSignIn, runSignInBench } from './signin.ts';
import { formatIngestRows, runAuditBench, runIngestBench } from './audit.ts';
import { formatDelegation, runDelegationBench } from './delegation.ts';

const only = process.argv[2];
const want = (name: string) => !only || only === name;

if (want('algorithms')) {
  console.log('\n== Signing algorithms (jose, one core): access-token alg choice');
  console.log(formatRows(await runAlgorithmBench()));
}
if (want('verify')) {
  const v = await runVerifyBench();
  console.log('\n== Offline verification through gatehouse/verify (ES256)');
  console.log(
    `gatehouse/verify: ${v.verifierPerSec.toFixed(0)}/s   bare jose.jwtVerify baseline: ${v.baselinePerSec.toFixed(0)}/s   ratio ${v.ratio.toFixed(2)}   JWKS fetches: ${v.jwksFetches}`,
  );
  const d = await runVerifyDpopBench();
  console.log('\n== Offline verification with DPoP (ES256 token, ES256 proof, fresh proof per request)');
  console.log(
    `verify(token, { dpop }): ${d.verifierPerSec.toFixed(0)}/s   bare jose (token + proof + checks) baseline: ${d.baselinePerSec.toFixed(0)}/s   ratio ${d.ratio.toFixed(2)}`,
  );
}
if (want('delegation')) {
  console.log('\n== Offline verification of a delegated token (act three agents deep, ES256, key set in hand)');
  console.log(formatDelegation(await runDelegationBench()));
}
if (want('tokens')) {
  console.log('\n== Client-credentials tokens (server pinned to one core, 16 concurrent clients, median of 5 rounds)');
  console.log(formatTokenRows(await runTokenBench()));
}
if (want('signin')) {
  console.log('\n== Sign-ins without a browser');
  console.log(formatSignIn(await runSignInBench()));
}
if (want('audit')) {
  console.log('\n== Audit appends: events/s through POST /audit/events (batches of 100, 4 senders) beside in-process group commit');
  const { rows } = await runAuditBench(['postgres', 'pglite'], 2000);
  console.log(formatIngestRows(await runIngestBench(), rows));
}

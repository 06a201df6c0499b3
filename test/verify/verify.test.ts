import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { can, createVerifier, hasRole, VerifyError, type VerifierOptions, type VerifyErrorCode } from '../../src/verify/index.ts';

// A real issuer stand-in: a node:http server publishing a JWKS we control, counting fetches.
interface JwksServer {
  issuer: string;
  keys: JWK[];
  requests: number;
  mode: 'ok' | 'error' | 'hang';
  close(): Promise<void>;
}

async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  const state = { keys, requests: 0, mode: 'ok' as JwksServer['mode'] };
  const server: Server = createServer((req, res) => {
    if (req.url !== '/jwks') return void res.writeHead(404).end();
    state.requests++;
    if (state.mode === 'hang') return; // never answers: the verifier's timeout must fire
    if (state.mode === 'error') return void res.writeHead(500).end('oops');
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    issuer: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  }) as JwksServer;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function newKey(kid: string = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { kid, privateKey, publicKey, jwk };
}

const AUDIENCE = 'https://agents.example.com';
const now = () => Math.floor(Date.now() / 1000);

function claimsFor(issuer: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = now();
  return {
    iss: issuer,
    sub: 'usr_alice',
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
    sid: 'sid_1',
    ...extra,
  };
}

function sign(key: SigningKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid, ...header }).sign(key.privateKey);
}

async function codeOf(promise: Promise<unknown>): Promise<VerifyErrorCode | 'resolved'> {
  try {
    await promise;
    return 'resolved';
  } catch (err) {
    expect(err).toBeInstanceOf(VerifyError);
    return (err as VerifyError).code;
  }
}

let server: JwksServer;
let key: SigningKey;
let issuer: string;
const verifierFor = (extra: Partial<VerifierOptions> = {}) => createVerifier({ issuer, audience: AUDIENCE, ...extra });

beforeAll(async () => {
  key = await newKey('key-1');
  server = await startJwksServer([key.jwk]);
  issuer = server.issuer;
});
afterAll(() => server.close());

describe('createVerifier: valid tokens', () => {
  it('returns typed claims, with roles and permissions', async () => {
    const claims = claimsFor(issuer);
    const verified = await verifierFor().verify(await sign(key, claims));
    expect(verified).toEqual(claims);
  });

  it('defaults absent roles and permissions to [] (a service token without grants)', async () => {
    const { roles, permissions, acr, amr, auth_time, ...service } = claimsFor(issuer);
    const verified = await verifierFor().verify(await sign(key, service));
    expect(verified.roles).toEqual([]);
    expect(verified.permissions).toEqual([]);
    expect(verified.acr).toBeUndefined();
  });

  it('accepts one of several audiences, and typ application/at+jwt (RFC 9068 §4)', async () => {
    const token = await sign(key, claimsFor(issuer, { aud: ['https://other.example.com', AUDIENCE] }), { typ: 'application/at+jwt' });
    await expect(verifierFor().verify(token)).resolves.toMatchObject({ sub: 'usr_alice' });
  });

  it('fetches the JWKS once and then verifies from the cache', async () => {
    const verifier = verifierFor();
    const before = server.requests;
    for (let i = 0; i < 5; i++) await verifier.verify(await sign(key, claimsFor(issuer)));
    expect(server.requests - before).toBe(1);
  });

  it('works from a key set given directly, without HTTP', async () => {
    const before = server.requests;
    const verifier = createVerifier({ issuer, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
    await expect(verifier.verify(await sign(key, claimsFor(issuer)))).resolves.toMatchObject({ jti: expect.any(String) });
    expect(server.requests).toBe(before);
  });
});

describe('hasRole and can on verified claims', () => {
  const claimsWith = async (roles: string[], permissions: string[] = []) =>
    verifierFor().verify(await sign(key, claimsFor(issuer, { roles, permissions })));

  it('follows the hierarchy: owner has admin, viewer lacks operator, auditor is not a viewer', async () => {
    const owner = await claimsWith(['owner']);
    expect(hasRole(owner, 'admin')).toBe(true);
    expect(hasRole(owner, 'viewer')).toBe(true);
    expect(hasRole(owner, 'auditor')).toBe(false);
    const viewer = await claimsWith(['viewer']);
    expect(hasRole(viewer, 'viewer')).toBe(true);
    expect(hasRole(viewer, 'operator')).toBe(false);
    const auditor = await claimsWith(['auditor']);
    expect(hasRole(auditor, 'auditor')).toBe(true);
    expect(hasRole(auditor, 'viewer')).toBe(false);
  });

  it('grants explicit, wildcard and role-implied permissions, and denies by default', async () => {
    const explicit = await claimsWith(['viewer'], ['agent:summarizer:inject']);
    expect(can(explicit, 'agent:summarizer:inject')).toBe(true);
    expect(can(explicit, 'agent:planner:inject')).toBe(false);
    const wildcard = await claimsWith([], ['agent:*:inject']);
    expect(can(wildcard, 'agent:planner:inject')).toBe(true);
    expect(can(wildcard, 'agent:planner:pause')).toBe(false);
    const operator = await claimsWith(['operator']);
    expect(can(operator, 'agent:planner:inject')).toBe(true); // implied by operator
    expect(can(operator, 'thread:t-42:view')).toBe(true); // implied by viewer, below operator
    expect(can(operator, 'thread:t-42:kill')).toBe(false); // admin only
    expect(can(operator, 'config:prompts:read')).toBe(false); // raw prompts need a grant
    const nobody = await claimsWith([]);
    expect(can(nobody, 'thread:t-42:view')).toBe(false);
    expect(can(nobody, 'not a permission')).toBe(false);
  });
});

describe('key rotation (refetch on unknown kid, with a cooldown)', () => {
  it('refetches once for a new kid and not for every garbage kid', async () => {
    const rotating = await startJwksServer([key.jwk]);
    try {
      const iss = rotating.issuer;
      const verifier = createVerifier({ issuer: iss, audience: AUDIENCE, cooldownMs: 1000 });
      await verifier.verify(await sign(key, claimsFor(iss)));
      expect(rotating.requests).toBe(1);

      const next = await newKey('key-2');
      rotating.keys = [key.jwk, next.jwk]; // the issuer starts publishing key-2
      const garbage = async () => {
        for (let i = 0; i < 10; i++) {
          const forged = await sign(key, claimsFor(iss), { kid: `garbage-${i}` });
          expect(await codeOf(verifier.verify(forged))).toBe('unknown_key');
        }
      };
      await garbage(); // within the cooldown: no fetch at all
      expect(rotating.requests).toBe(1);

      await new Promise((r) => setTimeout(r, 1100));
      await expect(verifier.verify(await sign(next, claimsFor(iss)))).resolves.toMatchObject({ sub: 'usr_alice' });
      expect(rotating.requests).toBe(2);
      await garbage(); // the refetch restarted the cooldown
      expect(rotating.requests).toBe(2);
      // the old key still verifies: a retired key stays published until its tokens expire
      await expect(verifier.verify(await sign(key, claimsFor(iss)))).resolves.toBeDefined();
    } finally {
      await rotating.close();
    }
  });
});

describe('refused tokens', () => {
  it('expired beyond the clock tolerance → expired; within it → accepted', async () => {
    const verifier = verifierFor({ clockToleranceSeconds: 30 });
    const t = now();
    const stale = await sign(key, claimsFor(issuer, { iat: t - 1000, exp: t - 31 }));
    expect(await codeOf(verifier.verify(stale))).toBe('expired');
    const skewed = await sign(key, claimsFor(issuer, { iat: t - 900, exp: t - 10 }));
    expect(await codeOf(verifier.verify(skewed))).toBe('resolved');
  });

  it('not yet valid (nbf in the future) → not_yet_valid', async () => {
    const token = await sign(key, claimsFor(issuer, { nbf: now() + 300 }));
    expect(await codeOf(verifierFor().verify(token))).toBe('not_yet_valid');
  });

  it('wrong audience → wrong_audience', async () => {
    const token = await sign(key, claimsFor(issuer, { aud: 'https://other.example.com' }));
    expect(await codeOf(verifierFor().verify(token))).toBe('wrong_audience');
  });

  it('wrong issuer → wrong_issuer', async () => {
    const token = await sign(key, claimsFor('https://evil.example.com'));
    expect(await codeOf(verifierFor().verify(token))).toBe('wrong_issuer');
  });

  it('missing client_id, jti or exp → malformed', async () => {
    for (const claim of ['client_id', 'jti', 'exp']) {
      const claims = claimsFor(issuer);
      delete claims[claim];
      expect(await codeOf(verifierFor().verify(await sign(key, claims)))).toBe('malformed');
    }
  });

  it('not a JWT at all → malformed', async () => {
    expect(await codeOf(verifierFor().verify('not.a.jwt'))).toBe('malformed');
    expect(await codeOf(verifierFor().verify(''))).toBe('malformed');
  });

  it('never puts the token in the error', async () => {
    const token = await sign(key, claimsFor(issuer, { aud: 'https://other.example.com' }));
    const err = await verifierFor()
      .verify(token)
      .then(
        () => expect.fail('verified a token for another audience'),
        (e: unknown) => e as VerifyError,
      );
    const signature = token.split('.')[2]!;
    expect(err.code).toBe('wrong_audience');
    expect(`${err.message} ${err.stack} ${String(err.cause)}`).not.toContain(signature);
  });
});

describe('refused tokens: attacks', () => {
  it('typ JWT (e.g. an ID token replayed as an access token) → wrong_type (RFC 9068 §4)', async () => {
    expect(await codeOf(verifierFor().verify(await sign(key, claimsFor(issuer), { typ: 'JWT' })))).toBe('wrong_type');
    const noTyp = await new SignJWT(claimsFor(issuer)).setProtectedHeader({ alg: 'ES256', kid: key.kid }).sign(key.privateKey);
    expect(await codeOf(verifierFor().verify(noTyp))).toBe('wrong_type');
  });

  it('alg none → wrong_algorithm', async () => {
    const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
    const token = `${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(claimsFor(issuer, { roles: ['owner'] }))}.`;
    expect(await codeOf(verifierFor().verify(token))).toBe('wrong_algorithm');
  });

  it('HS256 signed with the public key as the secret (algorithm confusion) → wrong_algorithm', async () => {
    for (const secret of [await exportSPKI(key.publicKey), JSON.stringify(key.jwk)]) {
      const token = await new SignJWT(claimsFor(issuer, { roles: ['owner'] }))
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: key.kid })
        .sign(new TextEncoder().encode(secret));
      expect(await codeOf(verifierFor().verify(token))).toBe('wrong_algorithm');
    }
  });

  it('refuses to be configured with none or HS*', () => {
    expect(() => verifierFor({ algorithms: ['none'] })).toThrow(TypeError);
    expect(() => verifierFor({ algorithms: ['ES256', 'HS256'] })).toThrow(TypeError);
  });

  it('refuses a JWKS over plain http except on loopback (keys in transit could be swapped)', () => {
    expect(() => createVerifier({ issuer: 'http://id.example.com', audience: AUDIENCE })).toThrow(TypeError);
    expect(() => createVerifier({ issuer: 'https://id.example.com', audience: AUDIENCE })).not.toThrow();
  });

  it('a payload changed after signing (roles raised to owner) → invalid_signature', async () => {
    const [h, , s] = (await sign(key, claimsFor(issuer))).split('.');
    const raised = base64url.encode(JSON.stringify(claimsFor(issuer, { roles: ['owner'] })));
    expect(await codeOf(verifierFor().verify(`${h}.${raised}.${s}`))).toBe('invalid_signature');
  });

  it('signed by another key claiming a published kid → invalid_signature', async () => {
    const impostor = await newKey(key.kid);
    expect(await codeOf(verifierFor().verify(await sign(impostor, claimsFor(issuer))))).toBe('invalid_signature');
  });

  it('roles that are not an array of strings → malformed', async () => {
    for (const roles of ['owner', { owner: true }, ['owner', 1], null]) {
      const token = await sign(key, claimsFor(issuer, { roles }));
      expect(await codeOf(verifierFor().verify(token))).toBe('malformed');
    }
  });

  it('permissions that are not <kind>:<id>:<action> strings → malformed', async () => {
    for (const permissions of ['agent:*:inject', ['*'], ['agent:*:*'], [42]]) {
      const token = await sign(key, claimsFor(issuer, { permissions }));
      expect(await codeOf(verifierFor().verify(token))).toBe('malformed');
    }
  });

  it('acr, amr or auth_time of the wrong shape → malformed (step-up relies on them)', async () => {
    for (const extra of [{ acr: 2 }, { amr: 'pwd' }, { auth_time: '0' }]) {
      const token = await sign(key, claimsFor(issuer, extra));
      expect(await codeOf(verifierFor().verify(token))).toBe('malformed');
    }
  });
});

describe('JWKS trouble', () => {
  it('server down → jwks_unavailable', async () => {
    const gone = await startJwksServer([key.jwk]);
    await gone.close();
    const verifier = createVerifier({ issuer: gone.issuer, audience: AUDIENCE });
    expect(await codeOf(verifier.verify(await sign(key, claimsFor(gone.issuer))))).toBe('jwks_unavailable');
  });

  it('HTTP 500 → jwks_unavailable', async () => {
    const failing = await startJwksServer([key.jwk]);
    failing.mode = 'error';
    try {
      const verifier = createVerifier({ issuer: failing.issuer, audience: AUDIENCE });
      expect(await codeOf(verifier.verify(await sign(key, claimsFor(failing.issuer))))).toBe('jwks_unavailable');
    } finally {
      await failing.close();
    }
  });

  it('no answer within timeoutMs → jwks_unavailable', async () => {
    const hanging = await startJwksServer([key.jwk]);
    hanging.mode = 'hang';
    try {
      const verifier = createVerifier({ issuer: hanging.issuer, audience: AUDIENCE, timeoutMs: 200 });
      expect(await codeOf(verifier.verify(await sign(key, claimsFor(hanging.issuer))))).toBe('jwks_unavailable');
    } finally {
      await hanging.close();
    }
  });

  it('a private key published in the JWKS → jwks_unavailable, never used', async () => {
    const leaky = await newKey('leaky');
    const privateJwk = { ...(await exportJWK(leaky.privateKey)), kid: 'leaky', alg: 'ES256' };
    const verifier = createVerifier({ issuer, audience: AUDIENCE, jwks: { keys: [privateJwk] } });
    expect(await codeOf(verifier.verify(await sign(leaky, claimsFor(issuer))))).toBe('jwks_unavailable');
  });
});

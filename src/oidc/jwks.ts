// The published JWKS: next, current and still-published retired keys, public parts only.
// Served by Gatehouse rather than oidc-provider, whose keystore holds only the keys that sign.
import type Router from '@koa/router';
import type { KeySet } from '../keys/keys.service.ts';

const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'crv', 'x', 'y', 'n', 'e'];

export function publicJwks(keys: KeySet): { keys: Record<string, unknown>[] } {
  // Belt and braces: copy only public members, whatever the row held.
  return {
    keys: keys.published.map((k) =>
      Object.fromEntries(PUBLIC_MEMBERS.filter((m) => (k as any)[m] !== undefined).map((m) => [m, (k as any)[m]])),
    ),
  };
}

export function jwksRoute(router: Router, deps: { keys: () => KeySet; maxAgeSeconds: number }): void {
  router.get('/jwks', (ctx) => {
    ctx.type = 'application/jwk-set+json; charset=utf-8';
    // Verifiers may cache this long; a next key is published longer than this before it signs.
    ctx.set('cache-control', `public, max-age=${deps.maxAgeSeconds}`);
    ctx.set('access-control-allow-origin', '*');
    ctx.body = JSON.stringify(publicJwks(deps.keys()));
  });
}

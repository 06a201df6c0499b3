// Signing keys: their states, and "rotate now" (refused, with the service's reason, while the
// next key is younger than the JWKS cache lifetime).
import type Router from '@koa/router';
import type { Sealer } from '../crypto/seal.ts';
import { listKeys, rotateKeys, type KeyPolicy } from '../keys/keys.service.ts';
import { keysPage } from '../../views/admin/keys.ts';
import { withNotice, type Guard } from './guard.ts';
import { noticeFor } from './notices.ts';
import type { Db } from '../db/handle.ts';

export function keyRoutes(router: Router, deps: { db: Db; guard: Guard; sealer: Sealer; keyPolicy: KeyPolicy }): void {
  const { db, guard } = deps;

  router.get('/admin/keys', async (ctx) => {
    const r = await guard.page(ctx, 'manage');
    if (r)
      guard.html(
        ctx,
        keysPage(r.frame, {
          keys: await listKeys(db),
          jwksMaxAgeSeconds: deps.keyPolicy.jwksMaxAgeSeconds,
          notice: noticeFor(ctx.query.done),
        }),
      );
  });

  router.post('/admin/keys/rotate', async (ctx) => {
    const r = await guard.change(ctx, 'manage', { action: 'key.rotate', target: 'signing-keys', returnTo: '/admin/keys' });
    if (!r) return;
    const done = await guard.perform(
      ctx,
      r,
      { action: 'key.rotate', target: 'signing-keys' },
      async (q) => {
        const rotated = await rotateKeys(q, deps.sealer, deps.keyPolicy);
        return {
          result: rotated,
          details: { rotated: rotated.map((k) => ({ alg: k.alg, retired: k.retired, current: k.current, next: k.next })) },
        };
      },
      { transaction: true },
    );
    if (!done.ok) {
      return guard.html(
        ctx,
        keysPage(r.frame, { keys: await listKeys(db), jwksMaxAgeSeconds: deps.keyPolicy.jwksMaxAgeSeconds, error: done.error.message }),
        done.error.status,
      );
    }
    ctx.status = 303;
    ctx.redirect(withNotice('/admin/keys', 'keys_rotated'));
  });
}

// Signing keys: their states, "rotate now" (refused, with the service's reason, while the next
// key is younger than the JWKS cache lifetime), and "revoke" for a compromised key.
import type Router from '@koa/router';
import type { Sealer } from '../crypto/seal.ts';
import { listKeys, rotateKeys, type KeyPolicy } from '../keys/keys.service.ts';
import { revokeKey } from '../keys/revoke.ts';
import { keysPage } from '../../views/admin/keys.ts';
import { withNotice, type Guard } from './guard.ts';
import { noticeFor } from './notices.ts';
import type { Db } from '../db/handle.ts';

export function keyRoutes(router: Router, deps: { db: Db; guard: Guard; sealer: Sealer; keyPolicy: KeyPolicy }): void {
  const { db, guard } = deps;

  /** The keys page again, with the reason a change was refused. */
  async function refused(
    ctx: Parameters<Guard['html']>[0],
    frame: Parameters<typeof keysPage>[0],
    error: { message: string; status: number },
  ) {
    const page = keysPage(frame, { keys: await listKeys(db), jwksMaxAgeSeconds: deps.keyPolicy.jwksMaxAgeSeconds, error: error.message });
    return guard.html(ctx, page, error.status);
  }

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
    if (!done.ok) return refused(ctx, r.frame, done.error);
    ctx.status = 303;
    ctx.redirect(withNotice('/admin/keys', 'keys_rotated'));
  });

  // Issue 7 point 4: like every admin change, CSRF-checked and behind a fresh sign-in (guard.change);
  // the revocation and its key.revoke event commit together.
  router.post('/admin/keys/revoke', async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const kid = typeof body.kid === 'string' ? body.kid : '';
    const all = body.all === 'on' || body.all === 'true';
    const r = await guard.change(ctx, 'manage', { action: 'key.revoke', target: kid || null, returnTo: '/admin/keys' });
    if (!r) return;
    const done = await guard.perform(
      ctx,
      r,
      { action: 'key.revoke', target: kid || null },
      async (q) => {
        const revoked = await revokeKey(q, deps.sealer, deps.keyPolicy, { kid, all });
        return { result: revoked, details: { all, ...revoked } };
      },
      { transaction: true },
    );
    if (!done.ok) return refused(ctx, r.frame, done.error);
    ctx.status = 303;
    ctx.redirect(withNotice('/admin/keys', 'key_revoked'));
  });
}

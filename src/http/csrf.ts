// CSRF protection for every form (OWASP "signed double-submit cookie"): the browser holds a
// random secret in an HttpOnly cookie; each form carries HMAC(key, secret). A cross-site page
// can neither read the cookie nor compute the HMAC. The Origin header, when the browser sends
// it, must also be Gatehouse's own.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import { GatehouseError } from '../errors.ts';

const COOKIE = 'gh_csrf';

export interface Csrf {
  /** The token to embed in a form (sets the cookie on first use). */
  token(ctx: Context): string;
  /** Throws FORBIDDEN unless the submitted token matches this browser's cookie. */
  verify(ctx: Context, submitted: unknown): void;
}

export function createCsrf(opts: { key: Buffer; secure: boolean; origin: string }): Csrf {
  const mac = (secret: string) => crypto.createHmac('sha256', opts.key).update(secret).digest('base64url');
  return {
    token(ctx) {
      let secret = ctx.cookies.get(COOKIE);
      if (!secret || !/^[A-Za-z0-9_-]{43}$/.test(secret)) {
        secret = crypto.randomBytes(32).toString('base64url');
        ctx.cookies.set(COOKIE, secret, { httpOnly: true, sameSite: 'lax', secure: opts.secure, path: '/', overwrite: true });
      }
      return mac(secret);
    },
    verify(ctx, submitted) {
      const origin = ctx.get('origin');
      if (origin && origin !== 'null' && origin !== opts.origin) {
        throw new GatehouseError('FORBIDDEN', 'This form was sent from another site and was refused.');
      }
      const secret = ctx.cookies.get(COOKIE);
      if (typeof submitted !== 'string' || !secret) throw new GatehouseError('FORBIDDEN', 'This form has expired. Reload the page and try again.');
      const a = Buffer.from(mac(secret));
      const b = Buffer.from(submitted);
      if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
        throw new GatehouseError('FORBIDDEN', 'This form has expired. Reload the page and try again.');
      }
    },
  };
}

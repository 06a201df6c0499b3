// CSRF protection for every form (OWASP "signed double-submit cookie"): the browser holds a
// random secret in an HttpOnly cookie; each form carries HMAC(key, secret, binding). A cross-site
// page can neither read the cookie nor compute the HMAC.
//  - The binding is the interaction, the enrollment link or the signed-in session the page belongs
//    to, so a token lifted from one sign-in cannot be replayed into another (OWASP CSRF cheat sheet,
//    "Signed Double-Submit Cookie": bind the token to the session).
//  - On HTTPS the cookie is `__Host-` prefixed: Secure, Path=/, no Domain, so a sibling subdomain
//    cannot plant its own secret (RFC 6265bis §4.1.3.2).
//  - The Origin header, when the browser sends it, must be Gatehouse's own; `null` (sandboxed
//    frames, data: and file: documents, cross-origin redirects) is refused. Gatehouse's pages use
//    `Referrer-Policy: same-origin` so that browsers send the real origin on its own forms.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import { ADMIN_SESSION_COOKIE } from '../admin/sessions.ts';
import { GatehouseError } from '../errors.ts';

// oidc-provider's session cookie: the /account pages belong to that sign-in session.
const PROVIDER_SESSION_COOKIE = '_session';

export interface Csrf {
  /** The token to embed in a form (sets the cookie on first use). */
  token(ctx: Context): string;
  /** Throws FORBIDDEN unless the submitted token matches this browser's cookie and this page's binding. */
  verify(ctx: Context, submitted: unknown): void;
}

/** What a form's token is bound to, read from the request the same way when the page is rendered and when it is posted. */
export function csrfBinding(ctx: Pick<Context, 'path' | 'cookies'>): string {
  const flow = /^\/(interaction|enroll)\/([^/]+)/.exec(ctx.path);
  if (flow) return `${flow[1]}:${flow[2]}`;
  if (/^\/admin(\/|$)/.test(ctx.path)) return `admin:${ctx.cookies.get(ADMIN_SESSION_COOKIE) ?? ''}`;
  if (/^\/account(\/|$)/.test(ctx.path)) return `account:${ctx.cookies.get(PROVIDER_SESSION_COOKIE) ?? ''}`;
  return 'page:';
}

export function createCsrf(opts: { key: Buffer; secure: boolean; origin: string }): Csrf {
  const cookie = opts.secure ? '__Host-gh_csrf' : 'gh_csrf';
  // Length-prefixed fields: no two (secret, binding) pairs produce the same MAC input.
  const mac = (secret: string, binding: string) =>
    crypto.createHmac('sha256', opts.key).update(`${secret.length}:${secret}|${binding.length}:${binding}`).digest('base64url');
  const refuse = () => new GatehouseError('FORBIDDEN', 'This form has expired. Reload the page and try again.');
  return {
    token(ctx) {
      let secret = ctx.cookies.get(cookie);
      if (!secret || !/^[A-Za-z0-9_-]{43}$/.test(secret)) {
        secret = crypto.randomBytes(32).toString('base64url');
        ctx.cookies.set(cookie, secret, { httpOnly: true, sameSite: 'lax', secure: opts.secure, path: '/', overwrite: true });
      }
      return mac(secret, csrfBinding(ctx));
    },
    verify(ctx, submitted) {
      const origin = ctx.get('origin');
      if (origin && origin !== opts.origin) {
        throw new GatehouseError('FORBIDDEN', 'This form was sent from another site and was refused.');
      }
      const secret = ctx.cookies.get(cookie);
      if (typeof submitted !== 'string' || !secret) throw refuse();
      const a = Buffer.from(mac(secret, csrfBinding(ctx)));
      const b = Buffer.from(submitted);
      if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) throw refuse();
    },
  };
}

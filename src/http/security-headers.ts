// Headers on every response, the library's JSON included (docs/architecture.md, "Transport and headers").
// HTML pages get a strict CSP with a per-response nonce: no inline script, no inline style.
import crypto from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Context, Next } from 'koa';

/** The headers every response carries, JSON ones included. */
export function setApiSecurityHeaders(res: ServerResponse, https: boolean): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  if (https) res.setHeader('Strict-Transport-Security', 'max-age=63072000; includeSubDomains');
}

export function contentSecurityPolicy(nonce: string, formTargets: string[] = []): string {
  const formAction = ["'self'", ...new Set(formTargets)].join(' ');
  return `default-src 'none'; script-src 'nonce-${nonce}' 'strict-dynamic'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`;
}

/**
 * Let a page's forms lead, through redirects, to `url`'s origin: Chromium checks form-action
 * against every hop of the redirect chain after a submit, and a sign-in ends on the client's
 * registered redirect URI. Only ever called with a URI oidc-provider has matched exactly
 * against the client's registration.
 */
export function allowFormRedirectTo(res: ServerResponse, nonce: string, urls: Array<string | undefined>): void {
  const origins: string[] = [];
  for (const u of urls) {
    try {
      if (u) origins.push(new URL(u).origin);
    } catch {
      /* not a URL: nothing to allow */
    }
  }
  res.setHeader('Content-Security-Policy', contentSecurityPolicy(nonce, origins));
}

// Powerful features no Gatehouse page uses are denied to the page and to anything it could embed;
// WebAuthn stays allowed for Gatehouse's own origin, where passkeys are enrolled and used
// (W3C Permissions Policy; OWASP Secure Headers Project).
export const PERMISSIONS_POLICY = [
  'accelerometer=()',
  'ambient-light-sensor=()',
  'autoplay=()',
  'bluetooth=()',
  'browsing-topics=()',
  'camera=()',
  'display-capture=()',
  'encrypted-media=()',
  'fullscreen=()',
  'geolocation=()',
  'gyroscope=()',
  'hid=()',
  'idle-detection=()',
  'local-fonts=()',
  'magnetometer=()',
  'microphone=()',
  'midi=()',
  'payment=()',
  'picture-in-picture=()',
  'screen-wake-lock=()',
  'serial=()',
  'usb=()',
  'xr-spatial-tracking=()',
  'clipboard-read=()',
  'clipboard-write=()',
  'publickey-credentials-get=(self)',
  'publickey-credentials-create=(self)',
].join(', ');

export function securityHeaders(opts: { https: boolean }) {
  return async function headers(ctx: Context, next: Next) {
    const nonce = crypto.randomBytes(16).toString('base64');
    ctx.state.cspNonce = nonce;
    const res = ctx.res;
    setApiSecurityHeaders(res, opts.https);
    // form-action: Chromium applies it to the redirect that follows a form submit, so the
    // sign-in forms, whose answer redirects back to a client's registered redirect URI on
    // another origin, would be blocked by 'self'. Those responses widen it (see the
    // interaction routes); everything else keeps 'self'.
    res.setHeader('Content-Security-Policy', contentSecurityPolicy(nonce));
    res.setHeader('Permissions-Policy', PERMISSIONS_POLICY);
    // Gatehouse's own forms carry their origin (the CSRF check refuses `Origin: null`, which
    // no-referrer would make browsers send); other sites still get no Referer at all.
    res.setHeader('Referrer-Policy', 'same-origin');
    await next();
  };
}

// Device cookies (OWASP Credential Stuffing Prevention / "Slow down online guessing attacks with
// device cookies"): a browser that completed a sign-in for an account gets a signed proof of it.
// Attempts for that account from such a browser skip the account's unknown-device counters and
// count on the cookie's own (src/signin/brute-force.ts), so an attacker who keeps the account's
// counters tripped does not keep its owner out.
//  - One entry per account: a random nonce and HMAC-SHA256(key, account key, nonce), the key derived
//    from the master key (src/crypto/derive-key.ts), so every instance checks alike and a cookie
//    cannot be forged or moved to another account. The account key is the hash of the normalized
//    email the counters use (src/signin/routes.ts, accountKey).
//  - One cookie holds the entries of the last few accounts signed in from this browser.
//  - HttpOnly, SameSite=Lax, 180 days; on HTTPS `__Host-` prefixed (Secure, Path=/, no Domain,
//    RFC 6265bis §4.1.3.2) so a sibling subdomain cannot plant one.
import crypto from 'node:crypto';
import type { Context } from 'koa';

export const DEVICE_COOKIE_DAYS = 180;
const MAX_ACCOUNTS = 5;
const ENTRY = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;

export interface DeviceCookies {
  /** The nonce of this browser's valid device cookie for the account, or null. */
  read(ctx: Context, accountKey: string): string | null;
  /** After a completed sign-in: issue (or renew) this browser's cookie for the account. */
  issue(ctx: Context, accountKey: string): void;
}

export function createDeviceCookies(opts: { key: Buffer; secure: boolean }): DeviceCookies {
  const name = opts.secure ? '__Host-gh_device' : 'gh_device';
  const mac = (accountKey: string, nonce: string) =>
    crypto.createHmac('sha256', opts.key).update(`device v1|${accountKey.length}:${accountKey}|${nonce}`).digest('base64url');
  const entries = (ctx: Context) =>
    (ctx.cookies.get(name) ?? '')
      .split('~')
      .slice(0, MAX_ACCOUNTS)
      .map((e) => ENTRY.exec(e))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ nonce: m[1]!, tag: m[2]! }));
  const valid = (accountKey: string, e: { nonce: string; tag: string }) => {
    const a = Buffer.from(mac(accountKey, e.nonce));
    const b = Buffer.from(e.tag);
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  };

  return {
    read(ctx, accountKey) {
      return entries(ctx).find((e) => valid(accountKey, e))?.nonce ?? null;
    },
    issue(ctx, accountKey) {
      const all = entries(ctx);
      const mine = all.find((e) => valid(accountKey, e));
      const nonce = mine?.nonce ?? crypto.randomBytes(16).toString('base64url');
      const kept = [{ nonce, tag: mac(accountKey, nonce) }, ...all.filter((e) => e !== mine)].slice(0, MAX_ACCOUNTS);
      ctx.cookies.set(name, kept.map((e) => `${e.nonce}.${e.tag}`).join('~'), {
        httpOnly: true,
        sameSite: 'lax',
        secure: opts.secure,
        path: '/',
        signed: false,
        overwrite: true,
        maxAge: DEVICE_COOKIE_DAYS * 86400 * 1000,
      });
    },
  };
}

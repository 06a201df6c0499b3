// Sign-in for command lines: the device authorization grant (RFC 8628), oidc-provider's
// `features.deviceFlow` with Gatehouse's pages and the rules the library leaves to the deployment:
//  - user codes are 8 characters of the base-20 alphabet (no vowels, no look-alikes), shown as
//    XXXX-XXXX: 20^8 ≈ 2^34.5 codes, a handful live at a time (RFC 8628 §5.1, §6.1);
//  - a wrong user code counts as an unauthenticated failure of the caller's address
//    (src/http/rate-limits.ts), so /device answers 429 after 30 wrong codes a minute from one
//    address; with 10-minute codes a guesser gets about 300 tries per address per code lifetime;
//  - the confirmation page names the application (its registered name) before anything is
//    granted, and the person then signs in with the full second factor through the usual
//    interaction pages (src/signin/), like any sign-in (RFC 8628 §5.4: remote phishing);
//  - polling: the device authorization response carries `interval` (5 s), and a client polling a
//    code faster than that gets `slow_down` (RFC 8628 §3.5), counted per device code in the shared
//    rate_limit table, so every instance agrees; an expired code answers `expired_token`
//    (src/oidc/adapter.ts keeps expired device codes readable a while for that).
import crypto from 'node:crypto';
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { createCounter } from '../db/rate-limiter.ts';
import type { Connection } from '../db/connect.ts';
import { DEVICE_POLL_INTERVAL } from './lifetimes.ts';

type DeviceFlow = NonNullable<NonNullable<Configuration['features']>['deviceFlow']>;

export interface DeviceFlowHooks {
  /** A user code that matches no device code was entered at /device (an unauthenticated failure). */
  onWrongUserCode?: (ctx: KoaContextWithOIDC) => Promise<void> | void;
}

const xsrfOf = (ctx: KoaContextWithOIDC) => String((ctx.oidc.session?.state as { secret?: string } | undefined)?.secret ?? '');

function clientNameOf(client: { clientName?: string; clientId: string } | undefined): string {
  return client?.clientName || client?.clientId || 'An application';
}

/** What the person is told after a refused code; never whether some other code exists. */
function messageFor(err: Error | undefined): { error?: string; notice?: string } {
  switch (err?.name) {
    case undefined:
      return {};
    case 'NoCodeError':
      return { error: 'Enter the code your device shows.' };
    case 'NotFoundError':
      return { error: 'That code is not valid. Check the code your device shows and try again.' };
    case 'ExpiredError':
      return { error: 'That code has expired. Start the sign-in on your device again.' };
    case 'AlreadyUsedError':
      return { error: 'That code was already used. Start the sign-in on your device again.' };
    case 'AbortedError':
      return { notice: 'Sign-in cancelled: the device was not signed in. You can close this page.' };
    default:
      return { error: 'The sign-in could not continue. Start it again on your device.' };
  }
}

export function deviceFlowFeature(hooks: DeviceFlowHooks = {}): DeviceFlow {
  return {
    enabled: true,
    charset: 'base-20',
    mask: '****-****',
    async userCodeInputSource(ctx, _form, _out, err) {
      const { deviceCodePage } = await import('../../views/device.ts');
      if (err?.name === 'NotFoundError' && ctx.oidc.route === 'code_verification') await hooks.onWrongUserCode?.(ctx);
      ctx.set('cache-control', 'no-store');
      ctx.type = 'html';
      const typed = (err as { userCode?: unknown } | undefined)?.userCode;
      ctx.body = deviceCodePage({
        xsrf: xsrfOf(ctx),
        code: typeof typed === 'string' && typed.length <= 32 ? typed : undefined,
        ...messageFor(err),
      });
    },
    async userCodeConfirmSource(ctx, _form, client, deviceInfo, userCode) {
      const { deviceConfirmPage } = await import('../../views/device.ts');
      const ip = (deviceInfo as { ip?: unknown } | undefined)?.ip;
      ctx.set('cache-control', 'no-store');
      ctx.type = 'html';
      ctx.body = deviceConfirmPage({
        xsrf: xsrfOf(ctx),
        userCode,
        clientName: clientNameOf(client),
        requestedFrom: typeof ip === 'string' && ip.length <= 64 ? ip : undefined,
      });
    },
    async successSource(ctx) {
      const { deviceDonePage } = await import('../../views/device.ts');
      ctx.set('cache-control', 'no-store');
      ctx.type = 'html';
      ctx.body = deviceDonePage({ clientName: clientNameOf(ctx.oidc.client) });
    },
  };
}

/** One poll per device code per window; a window slightly shorter than `interval` tolerates jitter. */
export function devicePollLimiter(db: Connection): RateLimiterAbstract {
  return createCounter(db, { keyPrefix: 'device_poll', points: 1, duration: Math.max(1, DEVICE_POLL_INTERVAL - 1) });
}

/**
 * On a provider: `interval` in the device authorization response, and `slow_down` for a device
 * code polled again within the interval. The check sits where oidc-provider looks the device code
 * up at /token (DeviceCode.find), before the code's state is read.
 */
export function attachDevicePolling(provider: Provider, polls: RateLimiterAbstract): void {
  // The code-entry form posts application/x-www-form-urlencoded. Anything else at POST /device
  // (found by test/server/fuzz.security.test.ts): oidc-provider's body parser refuses it, and its
  // error path then tries to persist a session that was never saved and answers a bare 500.
  // Refused here first, as the 400 it is, with the code-entry page to start again.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === '/device' && !ctx.is('application/x-www-form-urlencoded')) {
      const { deviceCodePage } = await import('../../views/device.ts');
      ctx.status = 400;
      ctx.set('cache-control', 'no-store');
      ctx.type = 'html';
      ctx.body = deviceCodePage({ xsrf: '', error: 'The form could not be read. Open this page again and enter the code.' });
      return;
    }
    await next();
  });
  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    if (oidc?.route === 'device_authorization' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      ctx.body = { ...(ctx.body as object), interval: DEVICE_POLL_INTERVAL };
    }
  });
  const DeviceCode = provider.DeviceCode as unknown as { find: (id: string, ...rest: unknown[]) => Promise<unknown> };
  const find = DeviceCode.find;
  // One poll per request: oidc-provider looks the code up again while issuing the tokens.
  const counted = new WeakSet<object>();
  DeviceCode.find = async function findPolled(this: unknown, id: string, ...rest: unknown[]) {
    const ctx = Provider.ctx as KoaContextWithOIDC | undefined;
    if (ctx?.oidc?.route === 'token' && !counted.has(ctx) && typeof id === 'string' && id.length <= 512) {
      counted.add(ctx);
      const key = crypto.createHash('sha256').update(id).digest('base64url');
      try {
        await polls.consume(key);
      } catch (res) {
        if (!(res instanceof RateLimiterRes)) throw res;
        throw new errors.SlowDown();
      }
    }
    return find.call(this, id, ...rest);
  };
}

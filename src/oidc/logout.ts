// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): Gatehouse's own confirmation
// and "signed out" pages instead of oidc-provider's.
import type { Configuration } from 'oidc-provider';
import { allowFormRedirectTo } from '../http/security-headers.ts';

type RpInitiatedLogout = NonNullable<NonNullable<Configuration['features']>['rpInitiatedLogout']>;

export const rpInitiatedLogout: RpInitiatedLogout = {
  enabled: true,
  logoutSource: async (ctx, form) => {
    const { logoutPage } = await import('../../views/logout.ts');
    ctx.set('cache-control', 'no-store');
    // The confirmation form's answer redirects to the client's registered post-logout URI.
    allowFormRedirectTo(ctx.res, '', [ctx.oidc.params?.post_logout_redirect_uri as string | undefined]);
    ctx.body = logoutPage({ form, nonce: '' });
  },
  postLogoutSuccessSource: async (ctx) => {
    const { loggedOutPage } = await import('../../views/logout.ts');
    ctx.body = loggedOutPage();
  },
};

// response_mode=form_post (OAuth 2.0 Form Post Response Mode) is advertised, so it must work in a
// browser: oidc-provider's auto-submitting page adds its script's hash to script-src, but the
// page's CSP form-action allows only Gatehouse itself. Once oidc-provider has checked the
// redirect_uri against the client's registration, its origin is added to form-action.
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

export function allowFormPostToRedirectUri(provider: Provider): void {
  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    if (!oidc || (oidc.route !== 'authorization' && oidc.route !== 'resume')) return;
    if (oidc.params?.response_mode !== 'form_post' || !ctx.response.is('html')) return;
    const uri = oidc.params.redirect_uri;
    const csp = ctx.response.get('content-security-policy');
    if (typeof uri !== 'string' || !csp || !oidc.client?.redirectUriAllowed(uri)) return;
    const origin = new URL(uri).origin;
    ctx.set(
      'content-security-policy',
      csp.replace(/form-action ([^;]*)/, (_m, v: string) => `form-action ${v.replace("'none'", '').trim()} ${origin}`),
    );
  });
}

// oidc-provider's own error page pulls a web font and has inline style; this one shows the
// OAuth error and its public description only (never error_detail, which may name internals).
import type { KoaContextWithOIDC } from 'oidc-provider';
import { errorView } from '../../views/error.ts';

export async function renderErrorPage(
  ctx: KoaContextWithOIDC,
  out: { error: string; error_description?: string },
  _error: Error,
): Promise<void> {
  ctx.type = 'html';
  ctx.set('cache-control', 'no-store');
  ctx.body = errorView({
    title: 'Sign-in could not continue',
    message: out.error_description ? `${out.error}: ${out.error_description}` : out.error,
    requestId: String(ctx.res.getHeader('x-request-id') ?? ''),
  });
}

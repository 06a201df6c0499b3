import { html } from '../src/http/html.ts';
import { layout } from './layout.ts';

export function errorView(opts: { title: string; message: string; requestId?: string }): string {
  return layout({
    title: opts.title,
    body: html`<p role="alert">${opts.message}</p>${opts.requestId ? html`<p class="muted">Reference: <code>${opts.requestId}</code></p>` : ''}`,
  });
}

/** The page a person sees while the database is out of reach (503, with Retry-After). */
export function unavailableView(opts: { message: string; requestId?: string }): string {
  return errorView({ title: 'Try again shortly', ...opts });
}

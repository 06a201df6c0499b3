import { html } from '../src/http/html.ts';
import { layout } from './layout.ts';

export function errorView(opts: { title: string; message: string; requestId?: string }): string {
  return layout({
    title: opts.title,
    body: html`<p role="alert">${opts.message}</p>${opts.requestId ? html`<p class="muted">Reference: <code>${opts.requestId}</code></p>` : ''}`,
  });
}

import { html, type Html } from '../src/http/html.ts';

/** The head of every page: no inline script or style (CSP), one stylesheet, readable on a phone. */
export function documentHead(opts: { title: string; scripts?: string[]; nonce?: string }): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${opts.title}</title>
<link rel="stylesheet" href="/static/gatehouse.css">
${(opts.scripts ?? []).map((src) => html`<script src="${src}" nonce="${opts.nonce ?? ''}" defer></script>`)}
</head>`;
}

export function layout(opts: { title: string; body: Html; scripts?: string[]; nonce?: string }): string {
  return html`${documentHead({ ...opts, title: `${opts.title} · Gatehouse` })}
<body>
<main class="card">
<h1>${opts.title}</h1>
${opts.body}
</main>
</body>
</html>`.value;
}

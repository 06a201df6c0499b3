// The device flow's pages (RFC 8628 §3.3), at oidc-provider's /device route: enter the code a
// command line shows, confirm which application asks, and the end. oidc-provider checks the forms
// with its own `xsrf` field (a secret kept in the sign-in session's state); these pages carry it.
// Labels and buttons are a contract (docs/architecture.md, "Pages"): **Code**, **Continue**,
// **Cancel**.
import { html } from '../src/http/html.ts';
import { layout } from './layout.ts';

function alert(message: string | undefined) {
  return message ? html`<p role="alert">${message}</p>` : '';
}

export function deviceCodePage(p: { xsrf: string; code?: string; error?: string; notice?: string }): string {
  return layout({
    title: 'Sign in on a device',
    body: html`${alert(p.error)}${p.notice ? html`<p class="notice">${p.notice}</p>` : ''}
<p>Enter the code your device or command line shows.</p>
<form method="post" action="/device" novalidate>
<input type="hidden" name="xsrf" value="${p.xsrf}">
<label for="user_code">Code</label>
<input id="user_code" name="user_code" type="text" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="32" required autofocus value="${p.code ?? ''}">
<button type="submit">Continue</button>
</form>`,
  });
}

export function deviceConfirmPage(p: { xsrf: string; userCode: string; clientName: string; requestedFrom?: string }): string {
  return layout({
    title: 'Allow access?',
    body: html`<p><strong data-client-name>${p.clientName}</strong> is asking to sign in as you and act with your access.</p>
<p>Continue only if you started this sign-in yourself and your device shows this code:</p>
<p><code data-user-code>${p.userCode}</code></p>
${p.requestedFrom ? html`<p class="muted">Requested from address ${p.requestedFrom}.</p>` : ''}
<p class="muted">If you did not start it, or the code differs, choose Cancel: someone may be trying to get you to sign them in.</p>
<form method="post" action="/device">
<input type="hidden" name="xsrf" value="${p.xsrf}">
<input type="hidden" name="user_code" value="${p.userCode}">
<input type="hidden" name="confirm" value="yes">
<button type="submit">Continue</button>
<button type="submit" name="abort" value="yes" class="secondary">Cancel</button>
</form>`,
  });
}

export function deviceDonePage(p: { clientName: string }): string {
  return layout({
    title: 'Device signed in',
    body: html`<p><strong data-client-name>${p.clientName}</strong> is signed in. You can close this page and go back to your device.</p>`,
  });
}

// Sign-in pages. The labels and button names are a contract (docs/architecture.md, "Pages"): browser tests
// find fields and buttons by them.
import { html } from '../src/http/html.ts';
import { layout } from './layout.ts';

export interface PageContext {
  nonce: string;
  csrf: string;
}

function alert(message: string | undefined) {
  return message ? html`<p role="alert">${message}</p>` : '';
}

export function signInPage(
  p: PageContext & { uid: string; email?: string; error?: string; notice?: string; passkeyOnly?: boolean; clientName?: string },
): string {
  const passkey = html`<div class="passkey" data-passkey-signin ${p.passkeyOnly ? '' : html`data-autofill`} data-options="/interaction/${p.uid}/passkey/options" data-verify="/interaction/${p.uid}/passkey/verify" data-csrf="${p.csrf}">
<button type="button" class="secondary" data-passkey-button>Sign in with a passkey</button>
</div>`;
  return layout({
    title: 'Sign in',
    nonce: p.nonce,
    scripts: ['/static/simplewebauthn-browser.js', '/static/passkey.js'],
    body: html`${p.clientName ? html`<p class="muted">to continue to ${p.clientName}</p>` : ''}
${alert(p.error)}${p.notice ? html`<p class="notice">${p.notice}</p>` : ''}
${
  p.passkeyOnly
    ? html`<p>This application asks for a phishing-resistant sign-in: use a passkey.</p>`
    : html`<form method="post" action="/interaction/${p.uid}/login" novalidate>
<input type="hidden" name="_csrf" value="${p.csrf}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username webauthn" required maxlength="254" value="${p.email ?? ''}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
<button type="submit">Sign in</button>
</form>
<p class="muted">or</p>`
}
${passkey}
<p role="alert" data-passkey-error hidden></p>`,
  });
}

export function secondFactorPage(
  p: PageContext & {
    uid: string;
    method: string;
    hasTotp: boolean;
    hasPasskey: boolean;
    hasBackupCodes: boolean;
    error?: string;
    /** The page's own address (GET), for the browser's history when it answers a POST (static/passkey.js). */
    location?: string;
  },
): string {
  const totpForm = html`<form method="post" action="/interaction/${p.uid}/totp" novalidate>
<input type="hidden" name="_csrf" value="${p.csrf}">
<label for="code">Authentication code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="12" required autofocus>
<button type="submit">Continue</button>
</form>`;
  const backupForm = html`<form method="post" action="/interaction/${p.uid}/backup-code" novalidate>
<input type="hidden" name="_csrf" value="${p.csrf}">
<label for="backup">Backup code</label>
<input id="backup" name="code" type="text" autocomplete="off" maxlength="32" required autofocus>
<button type="submit">Continue</button>
</form>`;
  return layout({
    title: 'Confirm it is you',
    nonce: p.nonce,
    scripts: ['/static/simplewebauthn-browser.js', '/static/passkey.js'],
    body: html`${p.location ? html`<div hidden data-location="${p.location}"></div>` : ''}${alert(p.error)}
${p.method === 'totp' && p.hasTotp ? totpForm : p.hasBackupCodes || !p.hasTotp ? backupForm : totpForm}
${
  p.hasPasskey
    ? html`<div data-passkey-signin data-options="/interaction/${p.uid}/passkey/options" data-verify="/interaction/${p.uid}/passkey/verify" data-csrf="${p.csrf}">
<button type="button" class="secondary" data-passkey-button>Use a passkey</button></div><p role="alert" data-passkey-error hidden></p>`
    : ''
}
<p class="muted">${p.method === 'totp' && p.hasBackupCodes ? html`<a href="/interaction/${p.uid}/second-factor?method=backup">Use a backup code instead</a>` : p.hasTotp ? html`<a href="/interaction/${p.uid}/second-factor?method=totp">Use your authenticator app instead</a>` : ''}</p>`,
  });
}

export function tooManyAttemptsPage(p: { retryAfterSeconds: number; uid?: string }): string {
  return layout({
    title: 'Too many attempts',
    body: html`<p role="alert">Too many failed attempts. Wait ${p.retryAfterSeconds} second${p.retryAfterSeconds === 1 ? '' : 's'} and try again.</p>
${p.uid ? html`<p><a href="/interaction/${p.uid}">Back to sign-in</a></p>` : ''}`,
  });
}

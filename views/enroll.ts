// Enrollment pages: password, then a second factor (authenticator app or passkey), then backup
// codes shown once. A person may also enroll with a passkey alone.
import { html, raw } from '../src/http/html.ts';
import { layout } from './layout.ts';
import type { PageContext } from './signin.ts';

function alert(message: string | undefined) {
  return message ? html`<p role="alert">${message}</p>` : '';
}

function passkeyBox(p: PageContext & { token: string }, label: string) {
  return html`<div data-passkey-register data-options="/enroll/${p.token}/passkey/options" data-verify="/enroll/${p.token}/passkey/verify" data-csrf="${p.csrf}">
<label for="passkey-name">Passkey name</label>
<input id="passkey-name" name="passkey-name" type="text" maxlength="100" value="My passkey">
<button type="button" class="secondary" data-passkey-button>${label}</button>
</div>
<p role="alert" data-passkey-error hidden></p>`;
}

export function enrollPasswordPage(
  p: PageContext & { token: string; email: string; askEmail: boolean; role: string; error?: string },
): string {
  return layout({
    title: 'Set up your account',
    nonce: p.nonce,
    scripts: ['/static/simplewebauthn-browser.js', '/static/passkey.js'],
    body: html`<p>You were invited to Gatehouse as <strong>${p.role}</strong>${p.askEmail ? '' : html` with <strong>${p.email}</strong>`}.</p>
${alert(p.error)}
<form method="post" action="/enroll/${p.token}/password" novalidate>
<input type="hidden" name="_csrf" value="${p.csrf}">
${p.askEmail ? html`<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required maxlength="254" value="${p.email}">` : html`<input type="hidden" name="username" autocomplete="username" value="${p.email}">`}
<label for="new-password">New password</label>
<input id="new-password" name="password" type="password" autocomplete="new-password" required minlength="12" maxlength="128" aria-describedby="password-help">
<p id="password-help" class="muted">At least 12 characters. A long phrase you can remember is best; no special characters required.</p>
<button type="submit">Continue</button>
</form>
${p.askEmail ? '' : html`<p class="muted">or skip the password:</p>${passkeyBox(p, 'Use a passkey instead of a password')}`}`,
  });
}

export function enrollFactorPage(
  p: PageContext & { token: string; secretBase32: string; otpauthUrl: string; qrSvg: string; error?: string },
): string {
  return layout({
    title: 'Add a second factor',
    nonce: p.nonce,
    scripts: ['/static/simplewebauthn-browser.js', '/static/passkey.js'],
    body: html`${alert(p.error)}
<h2>Authenticator app</h2>
<p>Scan this code with your authenticator app, or enter the key by hand.</p>
<div class="qr">${raw(p.qrSvg)}</div>
<p>Key: <code class="key" data-totp-secret>${p.secretBase32}</code></p>
<p><a href="${p.otpauthUrl}" data-otpauth>Open in an authenticator app on this device</a></p>
<form method="post" action="/enroll/${p.token}/totp" novalidate>
<input type="hidden" name="_csrf" value="${p.csrf}">
<label for="code">Authentication code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="12" required>
<button type="submit">Continue</button>
</form>
<h2>Or a passkey</h2>
${passkeyBox(p, 'Add a passkey')}`,
  });
}

export function backupCodesPage(p: { nonce: string; codes: string[]; next: string }): string {
  return layout({
    title: 'Save your backup codes',
    nonce: p.nonce,
    body: html`<p>Each code signs you in once if you lose your authenticator. They are shown only now: save them somewhere safe.</p>
<ul class="codes" aria-label="Backup codes">${p.codes.map((c) => html`<li><code>${c}</code></li>`)}</ul>
<p><a class="button" href="${p.next}">I have saved my backup codes</a></p>`,
  });
}

export function invitationInvalidPage(message: string): string {
  return layout({ title: 'Invitation not valid', body: html`<p role="alert">${message}</p>` });
}

// The person's own page: password, factors, sessions.
import { html, raw } from '../src/http/html.ts';
import { layout } from './layout.ts';

/** One sign-in session as the page lists it. */
export interface AccountSessionView {
  uid: string;
  signedInAt: Date | null;
  amr: string[];
  current: boolean;
}

export interface AccountView {
  nonce: string;
  csrf: string;
  email: string;
  role: string;
  hasPassword: boolean;
  totp: boolean;
  passkeys: Array<{ id: string; name: string; created_at: Date | string; last_used_at: Date | string | null }>;
  backupCodesLeft: number;
  sessions: AccountSessionView[];
  message?: string;
  error?: string;
}

const when = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : 'never');

export function accountPage(v: AccountView): string {
  const csrf = html`<input type="hidden" name="_csrf" value="${v.csrf}">`;
  return layout({
    title: 'Your account',
    nonce: v.nonce,
    scripts: ['/static/simplewebauthn-browser.js', '/static/passkey.js'],
    body: html`<p>${v.email} · ${v.role}</p>
${v.error ? html`<p role="alert">${v.error}</p>` : ''}${v.message ? html`<p role="status">${v.message}</p>` : ''}
<section aria-labelledby="pw"><h2 id="pw">Password</h2>
<form method="post" action="/account/password" novalidate>${csrf}
${v.hasPassword ? html`<label for="current-password">Current password</label><input id="current-password" name="current" type="password" autocomplete="current-password" required maxlength="1024">` : ''}
<label for="new-password">New password</label><input id="new-password" name="password" type="password" autocomplete="new-password" required minlength="12" maxlength="128">
<button type="submit">Change password</button>
<p class="muted">Changing it signs you out everywhere else.</p>
</form></section>
<section aria-labelledby="factors"><h2 id="factors">Second factors</h2>
<p>Authenticator app: ${v.totp ? 'set up' : 'not set up'}</p>
<form method="post" action="/account/totp" class="inline">${csrf}<button type="submit" class="secondary">${v.totp ? 'Replace authenticator app' : 'Set up authenticator app'}</button></form>
<h3>Passkeys</h3>
<ul aria-label="Passkeys">${v.passkeys.map(
      (p) => html`<li>${p.name} <span class="muted">added ${when(p.created_at)}, last used ${when(p.last_used_at)}</span>
<form method="post" action="/account/passkeys/remove" class="inline">${csrf}<input type="hidden" name="id" value="${p.id}"><button type="submit" class="secondary">Remove ${p.name}</button></form></li>`,
    )}</ul>
<div data-passkey-register data-options="/account/passkeys/options" data-verify="/account/passkeys/verify" data-csrf="${v.csrf}">
<label for="passkey-name">Passkey name</label><input id="passkey-name" type="text" maxlength="100" value="My passkey">
<button type="button" class="secondary" data-passkey-button>Add a passkey</button></div>
<p role="alert" data-passkey-error hidden></p>
<h3>Backup codes</h3>
<p>${v.backupCodesLeft} unused.</p>
<form method="post" action="/account/backup-codes" class="inline">${csrf}<button type="submit" class="secondary">Make new backup codes</button></form>
</section>
<section aria-labelledby="sessions"><h2 id="sessions">Sessions</h2>
<table><thead><tr><th>Signed in</th><th>Methods</th><th></th></tr></thead><tbody>
${v.sessions.map(
  (s) =>
    html`<tr><td>${when(s.signedInAt)}${s.current ? ' (this browser)' : ''}</td><td>${s.amr.join(', ')}</td><td>${s.current ? '' : html`<form method="post" action="/account/sessions/end" class="inline">${csrf}<input type="hidden" name="uid" value="${s.uid}"><button type="submit" class="secondary">End session</button></form>`}</td></tr>`,
)}
</tbody></table></section>
<p><a href="/session/end">Sign out</a></p>`,
  });
}

export function accountTotpPage(v: {
  nonce: string;
  csrf: string;
  id: string;
  secretBase32: string;
  otpauthUrl: string;
  qrSvg: string;
  error?: string;
}): string {
  return layout({
    title: 'Set up your authenticator app',
    nonce: v.nonce,
    body: html`${v.error ? html`<p role="alert">${v.error}</p>` : ''}
<div class="qr">${raw(v.qrSvg)}</div>
<p>Key: <code class="key" data-totp-secret>${v.secretBase32}</code></p>
<p><a href="${v.otpauthUrl}" data-otpauth>Open in an authenticator app on this device</a></p>
<form method="post" action="/account/totp/confirm" novalidate><input type="hidden" name="_csrf" value="${v.csrf}"><input type="hidden" name="id" value="${v.id}">
<label for="code">Authentication code</label><input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="12" required>
<button type="submit">Continue</button></form>`,
  });
}

// Enrollment pages: password, then a second factor (authenticator app or passkey), then backup
// codes shown once. A person may also enroll with a passkey alone. The recovery links
// (src/accounts/recovery.ts) add a proof page before: the current password, or a second factor.
import { html, raw } from '../src/http/html.ts';
import { layout } from './layout.ts';
import type { PageContext } from './signin.ts';

function alert(message: string | undefined) {
  return message ? html`<p role="alert">${message}</p>` : '';
}

function passkeyBox(p: PageContext & { token: string }, label: string) {
  return html`<div
      data-passkey-register
      data-options="/enroll/${p.token}/passkey/options"
      data-verify="/enroll/${p.token}/passkey/verify"
      data-csrf="${p.csrf}"
    >
      <label for="passkey-name">Passkey name</label>
      <input id="passkey-name" name="passkey-name" type="text" maxlength="100" value="My passkey" />
      <button type="button" class="secondary" data-passkey-button>${label}</button>
    </div>
    <p role="alert" data-passkey-error hidden></p>`;
}

/** 'enroll' an invitation; 'reenroll' a re-enrollment link; 'reset' the last step of a password reset (no passkey instead). */
export type PasswordPageMode = 'enroll' | 'reenroll' | 'reset';

const PASSWORD_PAGE_TITLE: Record<PasswordPageMode, string> = {
  enroll: 'Set up your account',
  reenroll: 'Set up your account again',
  reset: 'Choose a new password',
};

export function enrollPasswordPage(
  p: PageContext & { token: string; email: string; askEmail: boolean; role: string; error?: string; mode?: PasswordPageMode },
): string {
  const mode = p.mode ?? 'enroll';
  const intro =
    mode === 'enroll'
      ? html`You were invited to Gatehouse as <strong>${p.role}</strong>${p.askEmail ? '' : html` with <strong>${p.email}</strong>`}.`
      : mode === 'reenroll'
        ? html`Set up <strong>${p.email}</strong> again: a password (or a passkey alone), then a second factor. Your old ones no longer
            work.`
        : html`Choose a new password for <strong>${p.email}</strong>. Every session you have ends when it is saved.`;
  return layout({
    title: PASSWORD_PAGE_TITLE[mode],
    nonce: p.nonce,
    scripts: ['/static/simplewebauthn-browser.js', '/static/passkey.js'],
    body: html`<p>${intro}</p>
      ${alert(p.error)}
      <form method="post" action="/enroll/${p.token}/password" novalidate>
        <input type="hidden" name="_csrf" value="${p.csrf}" />
        ${p.askEmail ? html`<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required maxlength="254" value="${p.email}" />` : html`<input type="hidden" name="username" autocomplete="username" value="${p.email}" />`}
        <label for="new-password">New password</label>
        <input
          id="new-password"
          name="password"
          type="password"
          autocomplete="new-password"
          required
          minlength="12"
          maxlength="128"
          aria-describedby="password-help"
        />
        <p id="password-help" class="muted">
          At least 12 characters. A long phrase you can remember is best; no special characters required.
        </p>
        <button type="submit">${mode === 'reset' ? 'Save new password' : 'Continue'}</button>
      </form>
      ${
        p.askEmail || mode === 'reset'
          ? ''
          : html`<p class="muted">or skip the password:</p>
              ${passkeyBox(p, 'Use a passkey instead of a password')}`
      }`,
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
        <input type="hidden" name="_csrf" value="${p.csrf}" />
        <label for="code">Authentication code</label>
        <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="12" required />
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
      <ul class="codes" aria-label="Backup codes">
        ${p.codes.map((c) => html`<li><code>${c}</code></li>`)}
      </ul>
      <p><a class="button" href="${p.next}">I have saved my backup codes</a></p>`,
  });
}

export function invitationInvalidPage(message: string): string {
  return layout({ title: 'Invitation not valid', body: html`<p role="alert">${message}</p>` });
}

/** A factor reset, first: the current password, proven before any new factor can be added. */
export function provePasswordPage(p: PageContext & { token: string; email: string; error?: string }): string {
  return layout({
    title: 'Confirm your password',
    nonce: p.nonce,
    body: html`<p>
        To set up a new second factor for <strong>${p.email}</strong>, first enter your current password. This link does not change your
        password.
      </p>
      ${alert(p.error)}
      <form method="post" action="/enroll/${p.token}/prove-password" novalidate>
        <input type="hidden" name="_csrf" value="${p.csrf}" />
        <input type="hidden" name="username" autocomplete="username" value="${p.email}" />
        <label for="current-password">Current password</label>
        <input id="current-password" name="password" type="password" autocomplete="current-password" required maxlength="512" />
        <button type="submit">Continue</button>
      </form>`,
  });
}

/** A password reset, first: a second factor the person still has. */
export function proveFactorPage(
  p: PageContext & { token: string; email: string; totp: boolean; backupCodes: boolean; passkey: boolean; error?: string },
): string {
  const codeLabel = p.totp && p.backupCodes ? 'Authentication code or backup code' : p.totp ? 'Authentication code' : 'Backup code';
  return layout({
    title: 'Confirm it is you',
    nonce: p.nonce,
    scripts: p.passkey ? ['/static/simplewebauthn-browser.js', '/static/passkey.js'] : [],
    body: html`<p>
        To choose a new password for <strong>${p.email}</strong>, first prove a second factor: a code from your authenticator app, a backup
        code, or a passkey.
      </p>
      ${alert(p.error)}
      ${
        p.totp || p.backupCodes
          ? html`<form method="post" action="/enroll/${p.token}/prove-code" novalidate>
              <input type="hidden" name="_csrf" value="${p.csrf}" />
              <label for="code">${codeLabel}</label>
              <input id="code" name="code" type="text" autocomplete="one-time-code" maxlength="20" required />
              <button type="submit">Continue</button>
            </form>`
          : ''
      }
      ${
        p.passkey
          ? html`<div
                data-passkey-signin
                data-options="/enroll/${p.token}/prove-passkey/options"
                data-verify="/enroll/${p.token}/prove-passkey/verify"
                data-csrf="${p.csrf}"
              >
                <button type="button" class="secondary" data-passkey-button>Use a passkey</button>
              </div>
              <p role="alert" data-passkey-error hidden></p>`
          : ''
      }`,
  });
}

export function passwordChangedPage(p: { nonce: string; next: string }): string {
  return layout({
    title: 'Password changed',
    nonce: p.nonce,
    body: html`<p>Your new password is saved. Every session you had ended: sign in again with the new password.</p>
      <p><a class="button" href="${p.next}">Sign in</a></p>`,
  });
}

import { html, raw } from '../src/http/html.ts';
import { layout } from './layout.ts';

/** `form` is oidc-provider's own <form> (with its CSRF field); the buttons submit it. */
export function logoutPage(p: { form: string; nonce: string }): string {
  return layout({
    title: 'Sign out',
    nonce: p.nonce,
    body: html`${raw(p.form)}<p>Do you want to sign out of Gatehouse?</p>
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<button type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>`,
  });
}

export function loggedOutPage(): string {
  return layout({ title: 'Signed out', body: html`<p>You are signed out.</p>` });
}

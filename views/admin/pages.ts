// Admin pages outside the frame: refused, sign-in problems, signed out.
import { html } from '../../src/http/html.ts';
import { layout } from '../layout.ts';

export function deniedPage(p: { email: string; role: string; auditOnly?: boolean }): string {
  return layout({
    title: 'No access to the admin console',
    body: html`<p role="alert">${p.auditOnly ? 'Your account can read the audit log, but not manage users, clients or keys.' : 'Your account does not have access to the admin console.'}</p>
<p>You are signed in as <strong>${p.email}</strong> with the role <strong>${p.role}</strong>. The admin console is for owners; auditors may read the audit log. Ask an owner if you need access.</p>
<p>${p.auditOnly ? html`<a class="button" href="/admin/audit">Open the audit log</a> ` : ''}<a href="/session/end?client_id=gatehouse-admin">Sign out of Gatehouse</a></p>`,
  });
}

export function loginProblemPage(message: string): string {
  return layout({
    title: 'Sign-in to the admin console failed',
    body: html`<p role="alert">${message}</p><p><a class="button" href="/admin/login">Sign in again</a></p>`,
  });
}

export function signedOutPage(): string {
  return layout({
    title: 'Signed out',
    body: html`<p>You are signed out of the admin console.</p><p><a class="button" href="/admin">Sign in again</a></p>`,
  });
}

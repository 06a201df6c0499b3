// The frame of every admin page: navigation by what the person may use, who is signed in, a
// sign-out form, and the page. Same rules as every page: no inline script or style (CSP), one
// stylesheet, readable on a phone (tables turn into cards; see the end of gatehouse.css).
import { html, type Html } from '../../src/http/html.ts';
import { documentHead } from '../layout.ts';

export interface AdminFrame {
  nonce: string;
  csrf: string;
  email: string;
  role: string;
  /** The parts of the console this person may use. */
  access: { manage: boolean; audit: boolean };
  /** The sign-in is older than changes allow: say so before the person fills a form. */
  stale: boolean;
}

export type Section = 'users' | 'clients' | 'agents' | 'keys' | 'audit' | null;

export function alert(message: string | null | undefined): Html | '' {
  return message ? html`<p role="alert">${message}</p>` : '';
}

export function notice(message: string | null | undefined): Html | '' {
  return message ? html`<p class="notice" role="status">${message}</p>` : '';
}

/** A timestamp as an operator reads it: UTC, to the minute, with the exact time on hover. */
export function when(value: Date | string | null | undefined, never = 'never'): Html {
  if (value === null || value === undefined) return html`<span class="muted">${never}</span>`;
  const d = new Date(value);
  const iso = d.toISOString();
  return html`<time datetime="${iso}" title="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

function link(href: string, label: string, current: boolean) {
  return html`<a href="${href}"${current ? html` aria-current="page"` : ''}>${label}</a>`;
}

export function adminLayout(
  f: AdminFrame,
  p: { title: string; section: Section; body: Html; notice?: string | null; error?: string | null },
): string {
  return html`${documentHead({ title: `${p.title} · Gatehouse admin` })}
<body class="admin">
<header class="admin-bar">
<nav aria-label="Admin">
<strong class="brand">Gatehouse admin</strong>
${f.access.manage ? [link('/admin/users', 'Users', p.section === 'users'), link('/admin/clients', 'Clients', p.section === 'clients'), link('/admin/agents', 'Agents', p.section === 'agents'), link('/admin/keys', 'Keys', p.section === 'keys')] : ''}
${f.access.audit ? link('/admin/audit', 'Audit log', p.section === 'audit') : ''}
</nav>
<form method="post" action="/admin/logout" class="inline signout">
<input type="hidden" name="_csrf" value="${f.csrf}">
<span class="muted">${f.email} (${f.role})</span>
<button type="submit" class="secondary">Sign out</button>
</form>
</header>
<main class="card wide">
<h1>${p.title}</h1>
${f.stale && f.access.manage ? html`<p class="muted stale">Your sign-in is more than 5 minutes old: a change will first ask you to sign in again.</p>` : ''}
${notice(p.notice)}${alert(p.error)}
${p.body}
</main>
</body>
</html>`.value;
}

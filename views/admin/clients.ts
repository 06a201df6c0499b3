// Service clients and browser applications: the list, the form to create one, secrets shown once.
import { html } from '../../src/http/html.ts';
import { ROLES } from '../../src/authz/model.ts';
import { adminLayout, when, type AdminFrame } from './layout.ts';

/** One client as the page lists it: never its secret or its hash. */
export interface ClientView {
  client_id: string;
  name: string;
  kind: string;
  grants: string[];
  auth: string;
  roles: string[];
  permissions: string[];
  allowed_cidrs: string[];
  redirect_uris: string[];
  require_dpop?: boolean;
  certificate_bound?: boolean;
  created_at: string;
}

export interface ClientForm {
  name: string;
  type: 'service' | 'browser';
  auth: string;
  roles: string[];
  permissions: string;
  cidrs: string;
  redirectUris: string;
  jwks: string;
  subjectDn: string;
  refresh: boolean;
  /** Every token DPoP-bound (RFC 9449). */
  requireDpop: boolean;
  /** Tokens bound to the client certificate (RFC 8705), tls_client_auth only. */
  certificateBound: boolean;
}

export const EMPTY_CLIENT_FORM: ClientForm = {
  name: '',
  type: 'service',
  auth: 'client_secret_basic',
  roles: [],
  permissions: '',
  cidrs: '',
  redirectUris: '',
  jwks: '',
  subjectDn: '',
  refresh: true,
  requireDpop: false,
  certificateBound: false,
};

const AUTH_LABELS: Record<string, string> = {
  client_secret_basic: 'Client secret (client_secret_basic)',
  client_secret_post: 'Client secret in the form body (client_secret_post)',
  private_key_jwt: 'Signed JWT with its own key (private_key_jwt)',
  tls_client_auth: 'TLS client certificate (tls_client_auth)',
  none: 'None: a public browser application (PKCE only)',
};

const list = (items: string[]) => (items.length ? items.map((x) => html`<code>${x}</code> `) : html`<span class="muted">—</span>`);

export function clientsPage(
  f: AdminFrame,
  p: { clients: ClientView[]; builtIn: readonly string[]; form: ClientForm; notice?: string | null; error?: string | null },
): string {
  const csrf = html`<input type="hidden" name="_csrf" value="${f.csrf}">`;
  const rows = p.clients.map((c) => {
    const builtIn = p.builtIn.includes(c.client_id);
    return html`<tr>
<td data-label="Client">${c.name}${builtIn ? html` <span class="muted">(built in)</span>` : ''}<br><code>${c.client_id}</code></td>
<td data-label="Type">${c.kind === 'service' ? 'service' : 'browser application'}<br><span class="muted">${c.grants.join(', ')}; ${c.auth}${c.require_dpop ? '; DPoP required' : ''}${c.certificate_bound ? '; certificate-bound' : ''}</span></td>
<td data-label="Roles and permissions">${c.roles.length || c.permissions.length ? list([...c.roles, ...c.permissions]) : html`<span class="muted">—</span>`}</td>
<td data-label="Allowed networks">${c.allowed_cidrs.length ? list(c.allowed_cidrs) : html`<span class="muted">any</span>`}</td>
<td data-label="Redirect URIs">${list(c.redirect_uris)}</td>
<td data-label="Created">${when(c.created_at)}</td>
<td data-label="Actions">${
      builtIn
        ? html`<span class="muted">managed by Gatehouse</span>`
        : html`${
            c.auth === 'client_secret_basic' || c.auth === 'client_secret_post'
              ? html`<form method="post" action="/admin/clients/${c.client_id}/rotate-secret" class="inline">${csrf}<button type="submit" class="secondary" aria-label="Rotate secret of ${c.name}">Rotate secret</button></form>`
              : ''
          }
<details><summary>Delete…</summary><p>Its tokens stop being issued; grants and refresh tokens are revoked.</p>
<form method="post" action="/admin/clients/${c.client_id}/delete">${csrf}<button type="submit" class="danger" aria-label="Delete ${c.name}">Delete client</button></form></details>`
    }</td>
</tr>`;
  });
  const v = p.form;
  return adminLayout(f, {
    title: 'Clients',
    section: 'clients',
    notice: p.notice ?? null,
    error: p.error ?? null,
    body: html`<table aria-label="Clients">
<thead><tr><th scope="col">Client</th><th scope="col">Type</th><th scope="col">Roles and permissions</th><th scope="col">Allowed networks</th><th scope="col">Redirect URIs</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}</tbody>
</table>
<section>
<h2>Create a client</h2>
<form method="post" action="/admin/clients" novalidate>
${csrf}
<label for="name">Name</label>
<input id="name" name="name" type="text" required maxlength="100" value="${v.name}">
<label for="type">Type</label>
<select id="type" name="type">
<option value="service"${v.type === 'service' ? html` selected` : ''}>Service (client credentials)</option>
<option value="browser"${v.type === 'browser' ? html` selected` : ''}>Browser application (code + PKCE)</option>
</select>
<label for="auth">Authentication</label>
<select id="auth" name="auth">${Object.entries(AUTH_LABELS).map(([value, label]) => html`<option value="${value}"${value === v.auth ? html` selected` : ''}>${label}</option>`)}</select>
<fieldset>
<legend>Roles in its tokens (services)</legend>
${ROLES.map((r) => html`<label class="check"><input type="checkbox" name="roles" value="${r}"${v.roles.includes(r) ? html` checked` : ''}> ${r}</label>`)}
</fieldset>
<label for="client-permissions">Permissions</label>
<textarea id="client-permissions" name="permissions" rows="3">${v.permissions}</textarea>
<label for="cidrs">Allowed networks</label>
<textarea id="cidrs" name="cidrs" rows="2" aria-describedby="cidrs-help">${v.cidrs}</textarea>
<p id="cidrs-help" class="muted">Services: CIDR ranges allowed to ask for tokens, one per line or comma-separated (for example 10.0.0.0/8). Empty: any address.</p>
<label for="redirect-uris">Redirect URIs</label>
<textarea id="redirect-uris" name="redirect_uris" rows="2" aria-describedby="redirect-help">${v.redirectUris}</textarea>
<p id="redirect-help" class="muted">Browser applications: exact https URLs, one per line (http only for localhost).</p>
<label class="check"><input type="checkbox" name="refresh" value="1"${v.refresh ? html` checked` : ''}> Refresh tokens (browser applications)</label>
<label for="jwks">Public keys (JWKS, for private_key_jwt)</label>
<textarea id="jwks" name="jwks" rows="3">${v.jwks}</textarea>
<label for="subject-dn">Certificate subject DN (for tls_client_auth)</label>
<input id="subject-dn" name="subject_dn" type="text" maxlength="500" value="${v.subjectDn}">
<label class="check"><input type="checkbox" name="require_dpop" value="1"${v.requireDpop ? html` checked` : ''}> Require DPoP-bound tokens</label>
<label class="check"><input type="checkbox" name="certificate_bound" value="1"${v.certificateBound ? html` checked` : ''}> Bind tokens to the client certificate (tls_client_auth)</label>
<button type="submit">Create client</button>
</form>
</section>`,
  });
}

export function secretOncePage(
  f: AdminFrame,
  p: { title: string; clientId: string; name: string; secret: string | null; previousValidUntil?: string | null },
): string {
  return adminLayout(f, {
    title: p.title,
    section: 'clients',
    body: html`<dl class="facts"><dt>Name</dt><dd>${p.name}</dd><dt>Client ID</dt><dd><code data-client-id>${p.clientId}</code></dd></dl>
${
  p.secret
    ? html`<label for="client-secret">Client secret</label>
<input id="client-secret" type="text" readonly value="${p.secret}" class="once">
<p class="muted">Copy it now: it is shown only once. Gatehouse keeps only a hash of it.${p.previousValidUntil ? html` The previous secret keeps working until ${when(p.previousValidUntil)}, so services can switch over.` : ''}</p>`
    : html`<p>This client has no secret.</p>`
}
<p><a class="button" href="/admin/clients">Done</a></p>`,
  });
}

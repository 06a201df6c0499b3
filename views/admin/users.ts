// People: the list with search, the invitation form, one person's page, and the links shown once.
import type { RecoveryLink } from '../../src/accounts/recovery.ts';
import { html, type Html } from '../../src/http/html.ts';
import { ROLES } from '../../src/authz/model.ts';
import { adminLayout, when, type AdminFrame } from './layout.ts';

/** A person's second factors, as counted for the pages. */
export interface FactorCounts {
  totp: boolean;
  passkeys: number;
  backup_codes_left: number;
}

/** One person as the pages show them. */
export interface UserView {
  id: string;
  email: string;
  role: string;
  permissions: readonly string[];
  status: string;
  has_password: boolean;
  last_sign_in_at: Date | string | null;
  created_at: Date | string;
}

export interface UserFilter {
  q: string;
  role: string;
  status: string;
}

function options(values: readonly string[], selected: string, any?: string): Html {
  return html`${any !== undefined ? html`<option value="" ${selected === '' ? html` selected` : ''}>${any}</option>` : ''}${values.map((v) => html`<option value="${v}" ${v === selected ? html` selected` : ''}>${v}</option>`)}`;
}

export function factorsText(f: FactorCounts): string {
  const parts: string[] = [];
  if (f.totp) parts.push('authenticator app');
  if (f.passkeys) parts.push(`${f.passkeys} passkey${f.passkeys === 1 ? '' : 's'}`);
  if (f.backup_codes_left) parts.push(`${f.backup_codes_left} backup code${f.backup_codes_left === 1 ? '' : 's'}`);
  return parts.length ? parts.join(', ') : 'none';
}

export function usersPage(
  f: AdminFrame,
  p: { users: Array<UserView & { factors: FactorCounts }>; total: number; filter: UserFilter; notice?: string | null },
): string {
  const rows = p.users.map(
    (u) =>
      html`<tr>
        <td data-label="Email"><a href="/admin/users/${u.id}">${u.email}</a></td>
        <td data-label="Role">${u.role}</td>
        <td data-label="Status"><span class="status ${u.status}">${u.status}</span></td>
        <td data-label="Factors">${factorsText(u.factors)}</td>
        <td data-label="Last sign-in">${when(u.last_sign_in_at)}</td>
      </tr>`,
  );
  return adminLayout(f, {
    title: 'Users',
    section: 'users',
    notice: p.notice ?? null,
    body: html`<p><a class="button" href="/admin/users/invite">Invite a user</a></p>
      <form method="get" action="/admin/users" class="filters" role="search">
        <div><label for="q">Search by email</label><input id="q" name="q" type="text" maxlength="254" value="${p.filter.q}" /></div>
        <div>
          <label for="filter-role">Role</label
          ><select id="filter-role" name="role">
            ${options(ROLES, p.filter.role, 'any role')}
          </select>
        </div>
        <div>
          <label for="filter-status">Status</label
          ><select id="filter-status" name="status">
            ${options(['active', 'disabled'], p.filter.status, 'any status')}
          </select>
        </div>
        <div><button type="submit">Search</button></div>
      </form>
      <p class="muted">
        ${p.users.length === p.total ? `${p.total} user${p.total === 1 ? '' : 's'}` : `${p.users.length} of ${p.total} users`}
      </p>
      ${
        p.users.length
          ? html`<table aria-label="Users">
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Status</th>
                  <th scope="col">Factors</th>
                  <th scope="col">Last sign-in</th>
                </tr>
              </thead>
              <tbody>
                ${rows}
              </tbody>
            </table>`
          : html`<p>No user matches.</p>`
      }`,
  });
}

export function invitePage(f: AdminFrame, p: { email?: string; role?: string; permissions?: string; error?: string | null }): string {
  return adminLayout(f, {
    title: 'Invite a user',
    section: 'users',
    error: p.error ?? null,
    body: html`<form method="post" action="/admin/users/invite" novalidate>
        <input type="hidden" name="_csrf" value="${f.csrf}" />
        <label for="email">Email</label>
        <input id="email" name="email" type="email" required maxlength="254" autocomplete="off" value="${p.email ?? ''}" />
        <label for="role">Role</label>
        <select id="role" name="role">
          ${options(ROLES, p.role ?? 'viewer')}
        </select>
        <label for="permissions">Permissions</label>
        <textarea id="permissions" name="permissions" rows="3" aria-describedby="permissions-help">${p.permissions ?? ''}</textarea>
        <p id="permissions-help" class="muted">
          Optional, on top of the role: one per line or comma-separated, as &lt;kind&gt;:&lt;id&gt;:&lt;action&gt;, for example
          agent:summarizer:inject.
        </p>
        <button type="submit">Create invitation</button>
      </form>
      <p><a href="/admin/users">Back to users</a></p>`,
  });
}

/** A link that works once and is never shown again: only its hash is stored. */
export function linkOncePage(f: AdminFrame, p: { title: string; intro: Html; url: string; expiresAt: Date; back: string }): string {
  return adminLayout(f, {
    title: p.title,
    section: 'users',
    body: html`${p.intro}
      <label for="once-link">${p.title === 'Invitation created' ? 'Invitation link' : 'Enrollment link'}</label>
      <input id="once-link" type="text" readonly value="${p.url}" class="once" />
      <p class="muted">
        Copy it now and send it to the person over a channel you trust: it is shown only once, works once, and expires ${when(p.expiresAt)}.
      </p>
      <p><a class="button" href="${p.back}">Done</a></p>`,
  });
}

export function userPage(
  f: AdminFrame,
  p: { user: UserView; factors: FactorCounts; permissionsText?: string; notice?: string | null; error?: string | null; self: boolean },
): string {
  const u = p.user;
  const action = (path: string) => `/admin/users/${u.id}/${path}`;
  const csrf = html`<input type="hidden" name="_csrf" value="${f.csrf}" />`;
  return adminLayout(f, {
    title: u.email,
    section: 'users',
    notice: p.notice ?? null,
    error: p.error ?? null,
    body: html`<dl class="facts">
        <dt>Status</dt>
        <dd><span class="status ${u.status}">${u.status}</span></dd>
        <dt>Role</dt>
        <dd>${u.role}</dd>
        <dt>Permissions</dt>
        <dd>
          ${u.permissions.length ? u.permissions.map((x) => html`<code>${x}</code> `) : html`<span class="muted">none beyond the role</span>`}
        </dd>
        <dt>Factors</dt>
        <dd>${factorsText(p.factors)}${u.has_password ? ', password' : ''}</dd>
        <dt>Last sign-in</dt>
        <dd>${when(u.last_sign_in_at)}</dd>
        <dt>Member since</dt>
        <dd>${when(u.created_at)}</dd>
        <dt>Account id</dt>
        <dd><code>${u.id}</code></dd>
      </dl>
      ${p.self ? html`<p class="muted">This is your own account.</p>` : ''}
      <section>
        <h2>Role</h2>
        <form method="post" action="${action('role')}" novalidate>
          ${csrf}
          <label for="role">Role</label>
          <select id="role" name="role">
            ${options(ROLES, u.role)}
          </select>
          <button type="submit">Change role</button>
        </form>
      </section>
      <section>
        <h2>Permissions</h2>
        <form method="post" action="${action('permissions')}" novalidate>
          ${csrf}
          <label for="permissions">Permissions</label>
          <textarea id="permissions" name="permissions" rows="4" aria-describedby="permissions-help">
${p.permissionsText ?? u.permissions.join('\n')}</textarea>
          <p id="permissions-help" class="muted">
            One per line or comma-separated, as &lt;kind&gt;:&lt;id&gt;:&lt;action&gt; (for example agent:summarizer:inject, thread:*:view).
            Empty: only what the role gives.
          </p>
          <button type="submit">Save permissions</button>
        </form>
      </section>
      <section>
        <h2>Sessions and factors</h2>
        <p class="muted">
          Changes to role, permissions and status reach the person's applications at their next token refresh, within 15 minutes everywhere.
        </p>
        <form method="post" action="${action('end-sessions')}" class="inline">
          ${csrf}
          <button type="submit" class="secondary">End all sessions</button>
        </form>
        <h3>Recovery links</h3>
        <p class="muted">
          Each link is shown once, works once, for 24 hours, and ends every session of the person when used. It does only what it says.
        </p>
        <details>
          <summary>Reset factors…</summary>
          <p>
            For a lost authenticator app or passkey. Removes the authenticator app, passkeys and backup codes and ends every session now;
            with the link the person enters their current password, then sets up a new second factor. It does not change the password.
          </p>
          <form method="post" action="${action('reset-factors')}">
            ${csrf}
            <button type="submit" class="danger">Reset factors</button>
          </form>
        </details>
        <details>
          <summary>Reset password…</summary>
          <p>
            For a forgotten password. Nothing changes until the link is used: the person proves a second factor (authenticator code, backup
            code or passkey), then chooses a new password.
          </p>
          <form method="post" action="${action('reset-password')}">
            ${csrf}
            <button type="submit" class="danger">Reset password</button>
          </form>
        </details>
        <details>
          <summary>Re-enroll…</summary>
          <p>
            When both are lost. Removes the password, the authenticator app, passkeys and backup codes and ends every session now; the link
            is a new invitation for the same account, role and permissions.
          </p>
          <form method="post" action="${action('reenroll')}">
            ${csrf}
            <button type="submit" class="danger">Re-enroll</button>
          </form>
        </details>
        ${
          u.status === 'active'
            ? html`<details>
                <summary>Disable account…</summary>
                <p>The person can no longer sign in; their sessions end and their refresh tokens stop working at once.</p>
                <form method="post" action="${action('disable')}">
                  ${csrf}
                  <button type="submit" class="danger">Disable account</button>
                </form>
              </details>`
            : html`<form method="post" action="${action('enable')}">
                ${csrf}
                <button type="submit">Enable account</button>
              </form>`
        }
      </section>
      <p><a href="/admin/users">Back to users</a></p>`,
  });
}

/** What the page showing a new recovery link says it did. */
export function recoveryIntro(link: RecoveryLink) {
  const who = link.account.email;
  if (link.what === 'password')
    return html`<p>
      With this link <strong>${who}</strong> proves a second factor, then chooses a new password. Nothing changed yet; their sessions end
      when the link is used.
    </p>`;
  if (link.what === 'factors')
    return html`<p>
      The authenticator app, passkeys and backup codes of <strong>${who}</strong> were removed and their sessions ended. With this link they
      enter their current password, then set up new factors.
    </p>`;
  return html`<p>
    The password, authenticator app, passkeys and backup codes of <strong>${who}</strong> were removed and their sessions ended. With this
    link they enroll again, as <strong>${link.account.role}</strong>.
  </p>`;
}

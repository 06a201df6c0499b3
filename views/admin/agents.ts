// Agents (docs/architecture.md, "Agents and delegation"): the list, the form to register one, the
// secret shown once. An agent's permissions and max role are a ceiling, never a grant.
import { html } from '../../src/http/html.ts';
import { ROLES } from '../../src/authz/model.ts';
import { adminLayout, when, type AdminFrame } from './layout.ts';

/** One agent as the page lists it: never its secret or its hash. */
export interface AgentView {
  agent_id: string;
  name: string;
  permissions: string[];
  max_role: string | null;
  auth: string;
  disabled: boolean;
  created_at: string;
}

export interface AgentForm {
  name: string;
  permissions: string;
  maxRole: string;
}

export const EMPTY_AGENT_FORM: AgentForm = { name: '', permissions: '', maxRole: '' };

const list = (items: string[]) => (items.length ? items.map((x) => html`<code>${x}</code> `) : html`<span class="muted">—</span>`);

export function agentsPage(
  f: AdminFrame,
  p: { agents: AgentView[]; form: AgentForm; notice?: string | null; error?: string | null },
): string {
  const csrf = html`<input type="hidden" name="_csrf" value="${f.csrf}">`;
  const rows = p.agents.map(
    (a) => html`<tr>
<td data-label="Agent">${a.name}${a.disabled ? html` <span class="muted">(disabled)</span>` : ''}<br><code>${a.agent_id}</code></td>
<td data-label="Ceiling">${a.max_role ? html`<code>${a.max_role}</code> ` : ''}${list(a.permissions)}</td>
<td data-label="Authentication">${a.auth}</td>
<td data-label="Created">${when(a.created_at)}</td>
<td data-label="Actions"><details><summary>Delete…</summary><p>Its credentials stop at once, and no exchange naming it works any more.</p>
<form method="post" action="/admin/agents/${a.agent_id}/delete">${csrf}<button type="submit" class="danger" aria-label="Delete ${a.name}">Delete agent</button></form></details></td>
</tr>`,
  );
  const v = p.form;
  return adminLayout(f, {
    title: 'Agents',
    section: 'agents',
    notice: p.notice ?? null,
    error: p.error ?? null,
    body: html`<p class="muted">An agent acts for a person only through a token exchange by a client with the token_exchange grant. What it receives is the intersection of the person's rights, the ceiling below and the request.</p>
<table aria-label="Agents">
<thead><tr><th scope="col">Agent</th><th scope="col">Ceiling</th><th scope="col">Authentication</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}</tbody>
</table>
<section>
<h2>Register an agent</h2>
<form method="post" action="/admin/agents" novalidate>
${csrf}
<label for="name">Name</label>
<input id="name" name="name" type="text" required maxlength="100" value="${v.name}">
<label for="agent-permissions">Permission ceiling</label>
<textarea id="agent-permissions" name="permissions" rows="3" aria-describedby="agent-permissions-help">${v.permissions}</textarea>
<p id="agent-permissions-help" class="muted">One per line or comma-separated, for example agent:summarizer:* and thread:*:view.</p>
<label for="max-role">Highest role</label>
<select id="max-role" name="max_role">
<option value=""${v.maxRole === '' ? html` selected` : ''}>none</option>
${ROLES.map((r) => html`<option value="${r}"${v.maxRole === r ? html` selected` : ''}>${r}</option>`)}
</select>
<button type="submit">Register agent</button>
</form>
</section>`,
  });
}

export function agentSecretPage(f: AdminFrame, p: { agentId: string; name: string; secret: string }): string {
  return adminLayout(f, {
    title: 'Agent registered',
    section: 'agents',
    body: html`<dl class="facts"><dt>Name</dt><dd>${p.name}</dd><dt>Agent ID</dt><dd><code data-agent-id>${p.agentId}</code></dd></dl>
<label for="client-secret">Client secret</label>
<input id="client-secret" type="text" readonly value="${p.secret}" class="once">
<p class="muted">Copy it now: it is shown only once. Gatehouse keeps only a hash of it.</p>
<p><a class="button" href="/admin/agents">Done</a></p>`,
  });
}

// Signing keys and their states; rotate now; revoke a compromised key.
import { html } from '../../src/http/html.ts';
import { adminLayout, when, type AdminFrame } from './layout.ts';

/** A signing key's public facts: never its private part. */
export interface KeyView {
  kid: string;
  alg: string;
  state: string;
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
  published_until: string | null;
  revoked_at?: string | null;
}

export function keysPage(
  f: AdminFrame,
  p: { keys: KeyView[]; jwksMaxAgeSeconds: number; notice?: string | null; error?: string | null },
): string {
  const order = { current: 0, next: 1, retired: 2, revoked: 3 } as Record<string, number>;
  const keys = [...p.keys].sort(
    (a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || a.alg.localeCompare(b.alg) || b.created_at.localeCompare(a.created_at),
  );
  return adminLayout(f, {
    title: 'Signing keys',
    section: 'keys',
    notice: p.notice ?? null,
    error: p.error ?? null,
    body: html`<p class="muted">
        A next key is published before it signs anything (for at least ${p.jwksMaxAgeSeconds} s, the JWKS cache lifetime); a retired key
        stays published until every token it signed has expired.
      </p>
      <table aria-label="Signing keys">
        <thead>
          <tr>
            <th scope="col">Key ID</th>
            <th scope="col">Algorithm</th>
            <th scope="col">State</th>
            <th scope="col">Created</th>
            <th scope="col">Activated</th>
            <th scope="col">Retired</th>
            <th scope="col">Published until</th>
            <th scope="col">Revoke</th>
          </tr>
        </thead>
        <tbody>
          ${keys.map(
            (k) =>
              html`<tr>
                <td data-label="Key ID"><code>${k.kid}</code></td>
                <td data-label="Algorithm">${k.alg}</td>
                <td data-label="State"><span class="status ${k.state}">${k.state}</span></td>
                <td data-label="Created">${when(k.created_at)}</td>
                <td data-label="Activated">${when(k.activated_at, '—')}</td>
                <td data-label="Retired">${when(k.retired_at, '—')}</td>
                <td data-label="Published until">
                  ${
                    k.state === 'revoked'
                      ? html`<span class="muted">never: revoked</span> ${when(k.revoked_at ?? null, '')}`
                      : k.state === 'retired'
                        ? when(k.published_until, '—')
                        : html`<span class="muted">while in use</span>`
                  }
                </td>
                <td data-label="Revoke">
                  ${
                    k.state === 'revoked'
                      ? html`<span class="muted">—</span>`
                      : html`<form method="post" action="/admin/keys/revoke">
                          <input type="hidden" name="_csrf" value="${f.csrf}" />
                          <input type="hidden" name="kid" value="${k.kid}" />
                          <label><input type="checkbox" name="all" /> every ${k.alg} key</label>
                          <button type="submit" class="danger" aria-label="Revoke key ${k.kid}">Revoke</button>
                        </form>`
                  }
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
      <form method="post" action="/admin/keys/rotate">
        <input type="hidden" name="_csrf" value="${f.csrf}" />
        <p>Rotating promotes each next key to current, retires the current one and publishes a new next key.</p>
        <button type="submit">Rotate now</button>
      </form>
      <p class="muted">
        Revoke a key only if it may be compromised: it leaves the JWKS at once and every token it signed stops verifying. A fresh key
        replaces a revoked current or next key (the stored next key is not promoted: it may be compromised too); "every key" replaces all
        keys of that algorithm.
      </p>`,
  });
}

// The admin console is an OIDC client of Gatehouse itself (docs/architecture.md, "Entry points"): a built-in,
// first-party, public browser client that signs in with code + PKCE like any other application.
// Its id is fixed so that every instance and every restart agrees on it; its redirect URI
// follows the issuer, so the row is brought up to date at every start.
import { canonicalJson } from '../audit/canonical.ts';
import { bumpVersion } from '../db/change-feed.ts';
import * as repo from '../clients/clients.repository.ts';
import type { Db } from '../db/handle.ts';

export const ADMIN_CLIENT_ID = 'gatehouse-admin';
export const ADMIN_CLIENT_NAME = 'Gatehouse admin';

export const adminRedirectUri = (issuer: string) => `${issuer}/admin/callback`;
export const adminSignedOutUri = (issuer: string) => `${issuer}/admin/signed-out`;

export function adminClientMetadata(issuer: string): Record<string, unknown> {
  return {
    client_name: ADMIN_CLIENT_NAME,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [adminRedirectUri(issuer)],
    post_logout_redirect_uris: [adminSignedOutUri(issuer)],
    // A public client: the code is bound to the browser by PKCE, and there is no secret to keep.
    token_endpoint_auth_method: 'none',
    // auth_time in every ID token (OIDC Core §2): the console decides freshness from it.
    require_auth_time: true,
  };
}

/**
 * Insert the admin client, or bring it back to what it must be (issuer changed, row edited).
 * Returns whether the row changed; the `clients` version is bumped then, so every instance's
 * client cache drops it.
 */
export async function ensureAdminClient(db: Db, issuer: string): Promise<boolean> {
  const metadata = adminClientMetadata(issuer);
  return db.transaction().execute(async (trx) => {
    const row = await repo.findClientForUpdate(trx, ADMIN_CLIENT_ID);
    // jsonb reorders keys: compare canonical forms.
    const same =
      row &&
      row.kind === 'browser' &&
      row.secret_hash === null &&
      row.name === ADMIN_CLIENT_NAME &&
      canonicalJson(row.metadata) === canonicalJson(metadata);
    if (same) return false;
    await repo.upsertBuiltInClient(trx, { client_id: ADMIN_CLIENT_ID, name: ADMIN_CLIENT_NAME, metadata: JSON.stringify(metadata) });
    await bumpVersion(trx, 'clients');
    return true;
  });
}

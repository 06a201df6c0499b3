// The built-in first-party client /account signs in with: public, code + PKCE, its own callback only.
import type { Db } from '../db/handle.ts';
import { upsertBuiltInClient } from '../clients/clients.repository.ts';

export const ACCOUNT_CLIENT_ID = 'gatehouse-account';

/**
 * Registered (or its metadata refreshed) at every start. One upsert, so instances starting
 * together do not race.
 */
export async function ensureAccountClient(db: Db, issuer: string): Promise<void> {
  const metadata = {
    client_name: 'Gatehouse account',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${issuer}/account/callback`],
    token_endpoint_auth_method: 'none',
  };
  await upsertBuiltInClient(db, { client_id: ACCOUNT_CLIENT_ID, name: 'Gatehouse account', metadata: JSON.stringify(metadata) });
}

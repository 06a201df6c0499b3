// The built-in first-party client /account signs in with: public, code + PKCE, its own callback only.
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export const ACCOUNT_CLIENT_ID = 'gatehouse-account';

/**
 * Registered (or its metadata refreshed) at every start. One upsert, so instances starting
 * together do not race. It belongs in src/clients/clients.repository.ts, which another change owns.
 */
export async function ensureAccountClient(db: Kysely<Database>, issuer: string): Promise<void> {
  const metadata = {
    client_name: 'Gatehouse account',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${issuer}/account/callback`],
    token_endpoint_auth_method: 'none',
  };
  await db
    .insertInto('client')
    .values({ client_id: ACCOUNT_CLIENT_ID, name: 'Gatehouse account', kind: 'browser', metadata: JSON.stringify(metadata), secret_hash: null, roles: '[]', permissions: '[]', allowed_cidrs: '[]' })
    .onConflict((oc) => oc.column('client_id').doUpdateSet({ metadata: JSON.stringify(metadata) }))
    .execute();
}

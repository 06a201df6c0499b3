// How oidc-provider learns about people: account lookup (refused for a disabled person, so a
// refresh fails at once) and the claims of a person's access token (recomputed at every refresh).
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import * as accounts from '../accounts/accounts.repository.ts';
import type { Db } from '../db/handle.ts';

type AccountRow = NonNullable<Awaited<ReturnType<typeof accounts.findAccount>>>;

// The account as read once per request: oidc-provider's findAccount and the token's claims both
// want it at /token. Kept on the request only, never across requests: a disabled person or a
// changed role is seen by the next request.
const perRequest = new WeakMap<object, Map<string, Promise<AccountRow | undefined>>>();

function activeAccount(db: Db, id: string, ctx?: object): Promise<AccountRow | undefined> {
  if (typeof id !== 'string' || id.length > 100) return Promise.resolve(undefined);
  let seen = ctx ? perRequest.get(ctx) : undefined;
  const known = seen?.get(id);
  if (known) return known;
  const row = accounts.findAccount(db, id).then((r) => (r && r.status === 'active' ? r : undefined));
  if (ctx) {
    if (!seen) perRequest.set(ctx, (seen = new Map()));
    seen.set(id, row);
  }
  return row;
}

export function findAccountHook(db: Db): NonNullable<Configuration['findAccount']> {
  // A password change, a factor reset or "end all sessions" deletes the person's sessions,
  // grants and refresh tokens (src/accounts); a disabled person is not found at all.
  return async (ctx, sub) => {
    const row = await activeAccount(db, sub, ctx);
    if (!row) return undefined;
    return {
      accountId: row.id,
      claims: async () => ({ sub: row.id, email: row.email, email_verified: true }),
    };
  };
}

/** roles, permissions (from the account, now) and amr, acr, auth_time, sid (from the sign-in). */
export function accountTokenClaimsHook(db: Db) {
  return async (ctx: KoaContextWithOIDC, accountId: string): Promise<Record<string, unknown>> => {
    const row = await activeAccount(db, accountId, ctx);
    // The sign-in behind the token: a code (browser or device flow, RFC 8628) or a refresh token.
    const source = (ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.DeviceCode ?? ctx.oidc.entities.RefreshToken) as any;
    return {
      roles: row ? [row.role] : [],
      permissions: row ? (row.permissions as string[]) : [],
      ...(source?.amr ? { amr: source.amr } : {}),
      ...(source?.acr ? { acr: source.acr } : {}),
      ...(source?.authTime ? { auth_time: source.authTime } : {}),
      ...(source?.sid ? { sid: source.sid } : {}),
    };
  };
}

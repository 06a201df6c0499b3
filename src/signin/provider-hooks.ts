// How oidc-provider learns about people: account lookup (refused for a disabled person, so a
// refresh fails at once), the claims of a person's access token (recomputed at every refresh),
// and the sign-in policy (acr_values honoured, refresh tokens for first-party applications).
import type { Kysely } from 'kysely';
import { interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Database } from '../db/schema.ts';
import { ACR_MFA, ACR_PHR } from '../verify/index.ts';
import { allowFormRedirectTo } from '../http/security-headers.ts';

export const ACR_VALUES = [ACR_MFA, ACR_PHR];

type Db = Kysely<Database>;

async function activeAccount(db: Db, id: string) {
  if (typeof id !== 'string' || id.length > 100) return undefined;
  const row = await db.selectFrom('account').selectAll().where('id', '=', id).executeTakeFirst();
  return row && row.status === 'active' ? row : undefined;
}

export function findAccountHook(db: Db): NonNullable<Configuration['findAccount']> {
  // A password change, a factor reset or "end all sessions" deletes the person's sessions,
  // grants and refresh tokens (src/accounts); a disabled person is not found at all.
  return async (_ctx, sub) => {
    const row = await activeAccount(db, sub);
    if (!row) return undefined;
    return {
      accountId: row.id,
      claims: async () => ({ sub: row.id, email: row.email, email_verified: true }),
    };
  };
}

/** roles, permissions (from the account, now) and amr, acr, auth_time, sid (from the sign-in). */
export function accountTokenClaimsHook(db: Db) {
  return async (ctx: KoaContextWithOIDC, accountId: string, _token: unknown) => {
    const row = await activeAccount(db, accountId);
    const source = (ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken) as any;
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

/** Requested acr_values the session does not meet force a new sign-in (OIDC Core §3.1.2.1). */
function acrValuesCheck() {
  return new interactionPolicy.Check('acr_values_unmet', 'requested ACR could not be obtained', (ctx) => {
    const requested = typeof ctx.oidc.params?.acr_values === 'string' ? ctx.oidc.params.acr_values.split(' ') : [];
    if (requested.length === 0) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    const have = ctx.oidc.session?.acr;
    // phr is the stronger of the two: a phishing-resistant sign-in also satisfies mfa.
    const satisfied = requested.some((acr) => acr === have || (acr === ACR_MFA && have === ACR_PHR));
    return satisfied ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
  });
}

export function configurePeople(config: Configuration): void {
  config.acrValues = ACR_VALUES;
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(acrValuesCheck());
  config.interactions = { ...config.interactions, policy };
  // First-party applications registered with the refresh_token grant get refresh tokens without
  // a consent screen (oidc-provider otherwise drops offline_access unless prompt=consent). They
  // expire with the sign-in session, so logging out or a password change ends them too.
  config.issueRefreshToken = async (_ctx, client) => client.grantTypeAllowed('refresh_token');
  config.features = {
    ...config.features,
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        const { logoutPage } = await import('../../views/logout.ts');
        ctx.set('cache-control', 'no-store');
        // The confirmation form's answer redirects to the client's registered post-logout URI.
        allowFormRedirectTo(ctx.res, '', [ctx.oidc.params?.post_logout_redirect_uri as string | undefined]);
        ctx.body = logoutPage({ form, nonce: '' });
      },
      postLogoutSuccessSource: async (ctx) => {
        const { loggedOutPage } = await import('../../views/logout.ts');
        ctx.body = loggedOutPage();
      },
    },
  };
}

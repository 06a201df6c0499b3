// Consent without a round trip. Every client is first-party (registered by an owner), so whatever
// a client asks for is granted without a screen. oidc-provider's `loadExistingGrant` hook loads the
// session's grant for the client, or creates one, and adds what the request asks for that the grant
// does not cover yet: the same additions the consent step in src/signin/routes.ts used to make
// after an extra redirect (the consent prompt's missing OIDC scopes, claims and resource scopes).
// The grant is written only once no sign-in is pending for this request (the login prompt's own
// checks pass), as the consent step only ran after one: a request that will ask the person to sign
// in (again) changes no stored grant before they have. The consent branch stays for what still
// asks for consent explicitly (prompt=consent, native clients).
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { interactionPolicy } from 'oidc-provider';

type Grant = InstanceType<KoaContextWithOIDC['oidc']['provider']['Grant']>;
type Prompt = InstanceType<typeof interactionPolicy.Prompt>;

/** Claims oidc-provider never asks consent for (its `op_claims_missing` check). */
const ALWAYS_ALLOWED_CLAIMS = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss']);

/** Would oidc-provider ask for the login prompt on this request? */
async function loginPending(ctx: KoaContextWithOIDC, login: Prompt): Promise<boolean> {
  try {
    for (const c of login.checks) if (await c.check(ctx)) return true;
    return false;
  } catch {
    // An invalid request: the interactions step after this one throws the error itself.
    return true;
  }
}

/** Add to the grant what the request asks for and it does not hold; true if anything was added. */
export function coverRequest(ctx: KoaContextWithOIDC, grant: Grant): boolean {
  const oidc = ctx.oidc as any;
  let changed = false;
  const encounteredScopes = new Set(grant.getOIDCScopeEncountered().split(' '));
  const missingScopes = [...(oidc.requestParamOIDCScopes as Set<string>)].filter((s) => !encounteredScopes.has(s));
  if (missingScopes.length) {
    grant.addOIDCScope(missingScopes.join(' '));
    changed = true;
  }
  const encounteredClaims = new Set(grant.getOIDCClaimsEncountered());
  const missingClaims = [...(oidc.requestParamClaims as Set<string>)].filter(
    (c) => !encounteredClaims.has(c) && !ALWAYS_ALLOWED_CLAIMS.has(c),
  );
  if (missingClaims.length) {
    grant.addOIDCClaims(missingClaims);
    changed = true;
  }
  const requested = oidc.requestParamScopes as Set<string>;
  for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {}) as Array<[string, { scopes: Set<string> }]>) {
    const encountered = new Set(grant.getResourceScopeEncountered(indicator).split(' '));
    const missing = [...requested].filter((s) => server.scopes.has(s) && !encountered.has(s));
    if (missing.length) {
      grant.addResourceScope(indicator, missing.join(' '));
      changed = true;
    }
  }
  return changed;
}

export function loadFirstPartyGrant(login: Prompt) {
  return async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session!.grantIdFor(oidc.client!.clientId);
    const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (await loginPending(ctx, login)) return existing;
    // A grant of another person or client: oidc-provider refuses it itself (loadGrant), untouched.
    if (existing && (existing.accountId !== oidc.session!.accountId || existing.clientId !== oidc.client!.clientId)) return existing;
    const grant = existing ?? new oidc.provider.Grant({ accountId: oidc.session!.accountId!, clientId: oidc.client!.clientId });
    if (coverRequest(ctx, grant)) await grant.save();
    return grant;
  };
}

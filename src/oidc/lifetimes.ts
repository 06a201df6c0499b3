// Every lifetime Gatehouse gives a token, a flow or a session, in one table. Configurable ones
// (refresh tokens: GATEHOUSE_REFRESH_*; sign-in sessions: GATEHOUSE_SESSION_*) come from
// src/config/config.ts and are applied in ./session-lifetime.ts; these are the fixed ones.
// Why each number:
/** RFC 9068 access tokens: short enough that a role change or a disabled account is in force
 * everywhere within this time without any online check (agentserver notes: 15 minutes). */
export const ACCESS_TOKEN_TTL = 900;
/** ID tokens are read once by the relying party at sign-in; an hour is oidc-provider's default. */
export const ID_TOKEN_TTL = 3600;
/** Authorization codes are exchanged at once; RFC 6749 §4.1.2 recommends at most 10 minutes. */
export const AUTHORIZATION_CODE_TTL = 60;
/** One sign-in or enrollment interaction (the pages between /auth and the redirect back). */
export const INTERACTION_TTL = 600;
/** The password step must be followed by the second factor within one interaction's time. */
export const SIGNIN_FLOW_TTL = INTERACTION_TTL;
/** The admin console's own pending sign-in (its state, nonce and PKCE verifier cookie). */
export const ADMIN_LOGIN_TTL = INTERACTION_TTL;
/** Changes in /account and /admin need a sign-in younger than this: sensitive operations need a
 * recent authentication (OWASP ASVS V3.7.1), asked for as max_age (OIDC Core §3.1.2.1). */
export const FRESH_AUTH_SECONDS = 300;
/** Clock skew allowed when a retired key's last signature is computed. */
export const CLOCK_SKEW_SECONDS = 300;
/** The JWKS must keep a retired key published this long after its last signature: the longest
 * lifetime of anything it signs (access or ID token), plus clock skew. 3900 s with the values
 * above; src/keys reads it through KeyPolicy.maxSignedLifetimeSeconds. */
export const MAX_SIGNED_LIFETIME = Math.max(ACCESS_TOKEN_TTL, ID_TOKEN_TTL) + CLOCK_SKEW_SECONDS;
/** Device flow (RFC 8628 §3.2): the person has this long to enter the user code and sign in; ten
 * minutes is oidc-provider's default and leaves a guesser little time (see src/oidc/device-flow.ts). */
export const DEVICE_CODE_TTL = 600;
/** Seconds a command line waits between two polls of /token (RFC 8628 §3.2 `interval`, its default). */
export const DEVICE_POLL_INTERVAL = 5;
/** An expired device code stays readable this long, so a late poll hears `expired_token` (RFC
 * 8628 §3.5) rather than "not found"; oidc-provider checks the code's own `exp`. */
export const DEVICE_CODE_EXPIRED_GRACE = 600;

// What a page says after a change, chosen by a code in ?done= (post/redirect/get). Fixed texts:
// nothing from the request is ever echoed into the page this way.
const NOTICES: Record<string, string> = {
  reauth: 'You signed in again. Make your change again.',
  role: "Role changed. The person's applications see it at their next token refresh.",
  permissions: "Permissions saved. The person's applications see them at their next token refresh.",
  disabled: 'Account disabled. Its sessions ended and its refresh tokens stopped working.',
  enabled: 'Account enabled. The person can sign in again.',
  sessions: "All of this person's sessions ended; their refresh tokens stopped working.",
  client_deleted: 'Client deleted. Its grants and refresh tokens were revoked.',
  agent_deleted: 'Agent deleted. Its credentials stopped working, and so did every exchange naming it.',
  keys_rotated: 'Signing keys rotated. Verifiers pick up the new keys from the JWKS.',
  key_revoked: 'Key revoked: it left the JWKS and every token it signed stops verifying. Fresh keys replace it.',
};

export function noticeFor(code: unknown): string | null {
  return typeof code === 'string' && Object.hasOwn(NOTICES, code) ? NOTICES[code]! : null;
}

// Every event the audit log records (docs/architecture.md, "Audit log"; AGENTSERVER-SECURITY.md, "Audit
// Logging"): one declarative list, so that a typo is a compile error and the admin UI can offer
// the names as filters. Add a name here before logging it.
export const AUDIT_ACTIONS = [
  // Sign-in, with details {method: 'password' | 'totp' | 'passkey' | 'backup_code', …}; the IP is a column.
  'signin.success',
  'signin.failure',
  'session.end',
  'session.end_all',
  // Factors, with details {type: 'totp' | 'passkey' | 'backup_codes', …}.
  'factor.enroll',
  'factor.remove',
  // Recovery links (src/accounts/recovery.ts), one pair per kind: the link made (by an owner or the
  // CLI; details.what, what it revoked at once) and the link used (success) or its proof failed (failure).
  'factor.reset', // a factor-reset link: the lost factors are removed now; the person proves their password, then enrolls a new one
  'factor.reset_complete',
  'password.reset', // a password-reset link: nothing changes until the person proves a second factor and sets a new password
  'password.reset_complete',
  'account.reenroll', // a re-enrollment link: factors and password removed now; the person enrolls again as invited
  'account.reenroll_complete',
  'factor.regenerate', // a new set of backup codes: the old set stops working
  'password.change',
  'invitation.create',
  'invitation.accept', // an 'enroll' invitation became an account (recovery links have their own *_complete actions)
  'user.role_change',
  'user.permission_change',
  'user.disable',
  'user.enable',
  'client.create',
  'client.update', // not emitted yet (no way to edit a client); kept for test/audit/audit.test.ts, which appends it
  'client.delete',
  'client.secret_rotate',
  // Agents (src/agents/): principals whose permissions are a ceiling, never a grant.
  'agent.create',
  'agent.delete',
  'agent.disable',
  'agent.enable',
  'agent.secret_rotate',
  // RFC 8693 token exchange (src/oidc/token-exchange.ts): details {person, actors (newest first),
  // client_id, roles, permissions, audience, expires_in}; refusals as 'denied' with the OAuth error.
  'token.exchange',
  'key.rotate',
  // A compromised key withdrawn: out of the JWKS at once, replaced by freshly generated keys.
  'key.revoke',
  // Backup and restore (src/backup/): details {file, rows} (a restore: {file, rows, created_at}).
  'backup.create',
  'backup.restore',
  // Everything sealed re-sealed under a new master key (gatehouse master-key rotate): details {resealed: how many values}.
  'key.master_rotate',
  // A rotated refresh token came back: the grant was revoked (RFC 9700 §4.14.2).
  'token.refresh_reuse',
  // details {scope: 'address' | 'client', endpoint, limit, window_seconds}: once per key and window.
  'ratelimit.trip',
  // Failed client authentications at /token, one event per client and minute: details {failures, addresses, window_start, window_end}.
  'client.auth_failure',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const AUDIT_OUTCOMES = ['success', 'failure', 'denied'] as const;

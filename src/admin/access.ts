// Who may use which part of the admin console, decided by the one role and permission model
// (src/authz/model.ts) from the account as it is at this request. Owners hold `user:*:manage`
// and may do everything here; auditors hold `audit:*:read` and may read the audit log only.
// An explicit grant of either permission opens the same part: the model decides, not a second
// list of roles kept here.
import { can } from '../authz/model.ts';

/** Manage people, clients and keys (an owner capability). */
export const MANAGE_PERMISSION = 'user:*:manage';
/** Read the audit log (the auditor capability; owners read it too: docs/architecture.md, "Audit log"). */
export const AUDIT_PERMISSION = 'audit:*:read';

export type AdminArea = 'manage' | 'audit';

export interface AdminAccess {
  manage: boolean;
  audit: boolean;
}

export function adminAccess(account: { role: string; permissions: readonly string[] }): AdminAccess {
  const subject = { roles: [account.role], permissions: account.permissions };
  const manage = can(subject, MANAGE_PERMISSION);
  return { manage, audit: manage || can(subject, AUDIT_PERMISSION) };
}

export function hasAnyAccess(a: AdminAccess): boolean {
  return a.manage || a.audit;
}

/** Where a person lands after signing in to the console. */
export function homeFor(a: AdminAccess): string {
  return a.manage ? '/admin/users' : '/admin/audit';
}

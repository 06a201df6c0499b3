// One declarative model of roles and permissions. It feeds the token claims, the admin UI's
// own access checks and gatehouse/verify's hasRole / can. Default deny: nothing here grants
// anything that is not written down below (agentserver SECURITY.md, "Principle of Least Privilege").

/** The hierarchy, lowest first: each role has every capability of the ones before it. */
export const HIERARCHY = ['viewer', 'operator', 'admin', 'owner'] as const;
/** Roles outside the hierarchy: granted on their own, implying nothing else. */
export const INDEPENDENT_ROLES = ['auditor'] as const;
export const ROLES = [...HIERARCHY, ...INDEPENDENT_ROLES] as const;

export type HierarchyRole = (typeof HIERARCHY)[number];
export type Role = (typeof ROLES)[number];

/**
 * What each role adds, as resource permissions `<kind>:<id>:<action>` with `*` as the id
 * wildcard (docs/architecture.md, "Tokens and claims"). Raw prompts (`config:prompts:read`) are not
 * implied by operator: "Operators can't see raw prompts unless explicitly granted".
 */
export const ROLE_GRANTS = {
  viewer: ['topology:*:read', 'message:*:watch', 'thread:*:view'],
  operator: ['agent:*:inject', 'agent:*:view-config'],
  admin: ['agent:*:pause', 'agent:*:resume', 'thread:*:kill', 'config:*:reload'],
  owner: ['config:*:read', 'config:*:edit', 'user:*:manage', 'secret:*:view'],
  auditor: ['audit:*:read'],
} as const satisfies Record<Role, readonly string[]>;

// kind and action: lower-case words; id: a name, a thread id or `*`. Bounded so that a
// token cannot be bloated by one grant.
const PERMISSION_RE = /^[a-z][a-z0-9_-]{0,31}:(?:\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127}):[a-z][a-z0-9_-]{0,31}$/;

/**
 * Permissions on Gatehouse itself rather than on an agentserver resource: two parts,
 * `<kind>:<action>`, never implied by a role and never matched by a wildcard. Only service
 * clients hold them (`clients create … --permission audit:append`); a person cannot be granted
 * one. `audit:append`: append events to the audit log through POST /audit/events, with a token
 * whose audience is the issuer (docs/architecture.md, "Audit ingestion").
 */
export const SERVICE_PERMISSIONS = ['audit:append'] as const;
export type ServicePermission = (typeof SERVICE_PERMISSIONS)[number];
export const AUDIT_APPEND: ServicePermission = 'audit:append';

export function isServicePermission(value: unknown): value is ServicePermission {
  return typeof value === 'string' && (SERVICE_PERMISSIONS as readonly string[]).includes(value);
}

/** What the validation messages call a permission. */
export const PERMISSION_SHAPE = '<kind>:<id>:<action> (for example agent:summarizer:inject), or audit:append for a service';

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

export function isPermission(value: unknown): value is string {
  return typeof value === 'string' && (PERMISSION_RE.test(value) || isServicePermission(value));
}

/** Does a holder of `roles` have `role`, following the hierarchy? */
export function hasRole(roles: readonly string[], role: Role): boolean {
  if (roles.includes(role)) return true;
  const wanted = (HIERARCHY as readonly string[]).indexOf(role);
  if (wanted === -1) return false; // independent roles are only ever granted directly
  return roles.some((r) => (HIERARCHY as readonly string[]).indexOf(r) >= wanted);
}

/** Every permission pattern the roles imply, hierarchy included. */
export function impliedGrants(roles: readonly string[]): string[] {
  const out: string[] = [];
  for (const role of ROLES) {
    if (hasRole(roles, role)) out.push(...ROLE_GRANTS[role]);
  }
  return out;
}

function matches(pattern: string, wanted: string): boolean {
  if (isServicePermission(wanted) || isServicePermission(pattern)) return pattern === wanted;
  const p = pattern.split(':');
  const w = wanted.split(':');
  if (p.length !== 3 || w.length !== 3) return false;
  return p[0] === w[0] && p[2] === w[2] && (p[1] === '*' || p[1] === w[1]);
}

/**
 * The one decision: may a holder of these roles and explicit permissions do `permission`?
 * `permission` names one resource (`agent:summarizer:inject`); asking about `*` is asking
 * whether every resource of the kind is allowed, which only a wildcard grant answers.
 */
export function can(subject: { roles: readonly string[]; permissions: readonly string[] }, permission: string): boolean {
  if (!isPermission(permission)) return false;
  for (const grant of subject.permissions) if (matches(grant, permission)) return true;
  for (const grant of impliedGrants(subject.roles)) if (matches(grant, permission)) return true;
  return false;
}

// What a delegated token may carry (docs/architecture.md, "Agents and delegation"): the
// intersection of what the person may do, the agent's ceiling and what was asked for, computed on
// the permission grammar of src/authz/model.ts (`<kind>:<id>:<action>`, `*` as the id wildcard).
// An agent's ceiling may also use `*` as the action (`agent:summarizer:*`: every action on one
// agent). Tokens never carry it: a person's grants always name their action, so every
// intersection does too.
// Pure functions: no database, no clock.
import { HIERARCHY, hasRole, impliedGrants, isPermission, isRole, type Role } from '../authz/model.ts';

/** What a holder may do: roles (each implying its grants) and explicit permissions. */
export interface Capabilities {
  roles: readonly string[];
  permissions: readonly string[];
}

const hierarchyIndex = (role: string) => (HIERARCHY as readonly string[]).indexOf(role);

const ACTION_WILDCARD_RE = /^([^:]+:[^:]+):\*$/;

/** A permission of an agent's ceiling: a token permission, or one with `*` as the action. */
export function isCeilingPermission(value: unknown): value is string {
  if (isPermission(value)) return true;
  const m = typeof value === 'string' ? ACTION_WILDCARD_RE.exec(value) : null;
  return m !== null && isPermission(`${m[1]}:any`);
}

/** Every grant a holder has, its roles' implied grants included. */
export function allGrants(c: Capabilities): string[] {
  return [...c.permissions.filter(isCeilingPermission), ...impliedGrants(c.roles)];
}

/** One segment both allow: equal, or `*` on one side (the other side then). */
function meet(a: string, b: string): string | null {
  if (a === b || b === '*') return a;
  if (a === '*') return b;
  return null;
}

/** The one pattern both allow, or null: the kind equal, id and action each equal or `*` on one side. */
export function intersectPattern(a: string, b: string): string | null {
  const [ak, ai, aa] = a.split(':');
  const [bk, bi, ba] = b.split(':');
  if (ak === undefined || ak !== bk || ai === undefined || bi === undefined || aa === undefined || ba === undefined) return null;
  const id = meet(ai, bi);
  const action = meet(aa, ba);
  return id === null || action === null ? null : `${ak}:${id}:${action}`;
}

/** Does `pattern` allow everything `other` allows? */
export function covers(pattern: string, other: string): boolean {
  return intersectPattern(pattern, other) === other;
}

/** Drop duplicates and every pattern another one already covers (`agent:x:view` under `agent:*:view`). */
export function minimalGrants(grants: readonly string[]): string[] {
  const unique = [...new Set(grants)];
  return unique.filter((g) => !unique.some((o) => o !== g && covers(o, g))).sort();
}

/** The grants allowed by both sets, with wildcards handled on both sides. */
export function intersectGrants(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = [];
  for (const x of a)
    for (const y of b) {
      const both = intersectPattern(x, y);
      if (both) out.push(both);
    }
  return minimalGrants(out);
}

/** The roles both sides hold, following the hierarchy: operator ∧ admin = operator; auditor only if both have it. */
export function intersectRoles(a: readonly string[], b: readonly string[]): Role[] {
  const out = new Set<Role>();
  for (const x of a)
    for (const y of b) {
      if (!isRole(x) || !isRole(y)) continue;
      const ix = hierarchyIndex(x);
      const iy = hierarchyIndex(y);
      if (ix >= 0 && iy >= 0) out.add(HIERARCHY[Math.min(ix, iy)]!);
      else if (x === y) out.add(x);
    }
  // Keep only the highest hierarchy role (it implies the lower ones) and the independent ones.
  const top = [...out].filter((r) => hierarchyIndex(r) >= 0).sort((p, q) => hierarchyIndex(q) - hierarchyIndex(p))[0];
  return [...(top ? [top] : []), ...[...out].filter((r) => hierarchyIndex(r) < 0)];
}

/** A `scope` of a token-exchange request: role names and permissions, space-separated. */
export interface RequestedScope {
  roles: string[];
  permissions: string[];
  /** Words that are neither: the request is refused (invalid_scope) rather than silently narrowed. */
  unknown: string[];
}

export function parseRequestedScope(scope: string): RequestedScope {
  const words = scope.split(' ').filter(Boolean);
  return {
    roles: words.filter(isRole),
    permissions: words.filter((w) => !isRole(w) && isPermission(w)),
    unknown: words.filter((w) => !isRole(w) && !isPermission(w)),
  };
}

/**
 * What the delegated token carries. Without a request: the roles both hold and the grants both
 * hold. With one: only the roles and permissions asked for, each within both. Permissions the
 * resulting roles already imply are left out (the token stays small; `can` answers the same).
 */
export function narrow(subject: Capabilities, ceiling: Capabilities, requested?: RequestedScope): Capabilities {
  let roles: Role[] = intersectRoles(subject.roles, ceiling.roles);
  let grants = intersectGrants(allGrants(subject), allGrants(ceiling));
  if (requested) {
    roles = intersectRoles(roles, requested.roles);
    grants = intersectGrants(grants, [...requested.permissions, ...impliedGrants(requested.roles)]);
  }
  const implied = impliedGrants(roles);
  const permissions = grants.filter((g) => !implied.some((i) => covers(i, g)));
  return { roles, permissions };
}

/** Is `inner` within `outer` (every role and grant of inner held by outer)? The invariant of nesting. */
export function within(inner: Capabilities, outer: Capabilities): boolean {
  const outerGrants = allGrants(outer);
  return (
    inner.roles.every((r) => isRole(r) && hasRole(outer.roles, r)) && allGrants(inner).every((g) => outerGrants.some((o) => covers(o, g)))
  );
}

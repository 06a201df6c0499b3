// Searching the people list. Gatehouse serves one organisation (tens to a few thousand people),
// so the list is read whole and filtered here rather than with a query per filter.
import type { AccountListItem } from '../accounts/accounts.service.ts';
import { isRole } from '../authz/model.ts';

export interface UserSearch {
  /** Part of the email, any case. */
  q: string;
  role: string;
  status: string;
}

export function parseUserSearch(query: Record<string, unknown>): UserSearch {
  const s = (v: unknown) => (typeof v === 'string' ? v.trim().slice(0, 254) : '');
  const role = s(query.role);
  const status = s(query.status);
  return { q: s(query.q), role: isRole(role) ? role : '', status: status === 'active' || status === 'disabled' ? status : '' };
}

export function searchUsers(users: AccountListItem[], f: UserSearch): AccountListItem[] {
  const q = f.q.toLowerCase();
  return users.filter((u) => (!q || u.email.includes(q)) && (!f.role || u.role === f.role) && (!f.status || u.status === f.status));
}

// Form input of the admin pages: lists typed one per line or comma-separated, checked here so
// that a message names the entry at fault; the services validate again.
import { isPermission } from '../authz/model.ts';
import { GatehouseError } from '../errors.ts';

const MAX_ENTRY = 2000;

/** "a, b\nc" → ['a', 'b', 'c']; empty entries dropped, duplicates kept once. */
export function splitList(value: unknown, opts: { commas?: boolean } = {}): string[] {
  if (value === undefined || value === null) return [];
  const text = Array.isArray(value) ? value.join('\n') : String(value);
  const parts = text.split(opts.commas === false ? /\r?\n/ : /[\r\n,]+/);
  return [...new Set(parts.map((p) => p.trim()).filter(Boolean))];
}

export function parsePermissions(value: unknown): string[] {
  const list = splitList(value);
  for (const p of list) {
    if (!isPermission(p)) {
      throw new GatehouseError(
        'VALIDATION',
        `"${String(p).slice(0, 100)}" is not a permission: write <kind>:<id>:<action>, for example agent:summarizer:inject or thread:*:view (or audit:append for a service).`,
        { field: 'permissions' },
      );
    }
  }
  return list;
}

/** A form field that may arrive once (a string) or several times (an array of strings). */
export function many(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}

export function one(value: unknown, max = MAX_ENTRY): string {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === 'string' ? v.slice(0, max) : '';
}

const BASE = 'http://return-to.invalid';

/**
 * A place in the console to come back to after signing in, or `fallback`. Only a path under
 * /admin on this origin: anything else would make the sign-in an open redirect
 * (RFC 9700 §4.11, OWASP Unvalidated Redirects).
 */
export function safeReturnTo(value: unknown, fallback: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 1000 || !value.startsWith('/admin') || value.includes('\\'))
    return fallback;
  let url: URL;
  try {
    url = new URL(value, BASE);
  } catch {
    return fallback;
  }
  if (url.origin !== BASE || !/^\/admin(?:\/|$)/.test(url.pathname)) return fallback;
  if (/^\/admin\/(?:login|callback|logout|signed-out)(?:\/|$)/.test(url.pathname)) return fallback;
  return url.pathname + url.search;
}

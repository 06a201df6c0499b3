// What every admin route does before its own work. A page (GET): a valid admin session, the
// account read again now, access to the page's area. A change (POST) adds, in order: the CSRF
// token, the same checks (a refusal is itself audited), and a sign-in younger than
// or else the person is sent to sign in again and brought back.
import type { Context } from 'koa';
import type { Account } from '../accounts/accounts.service.ts';
import { GatehouseError, isGatehouseError } from '../errors.ts';
import type { AuditAction } from '../audit/actions.ts';
import { appendAudit } from '../audit/audit.service.ts';
import type { AuditOutcome } from '../db/schema.ts';
import type { Csrf } from '../http/csrf.ts';
import { deniedPage } from '../../views/admin/pages.ts';
import type { AdminFrame } from '../../views/admin/layout.ts';
import { adminAccess, type AdminAccess, type AdminArea } from './access.ts';
import { safeReturnTo } from './input.ts';
import { ADMIN_SESSION_COOKIE, findAdminSession, isFresh, type AdminSession } from './sessions.ts';
import { FRESH_AUTH_SECONDS } from '../oidc/lifetimes.ts';
import type { Db } from '../db/handle.ts';

export interface AdminRequest {
  account: Account;
  session: AdminSession;
  access: AdminAccess;
  frame: AdminFrame;
}

export interface Change {
  /** The event a refusal is recorded under (the change that was attempted). */
  action: AuditAction;
  target: string | null;
  /** The page to come back to after a fresh sign-in. */
  returnTo: string;
}

export interface AuditFields {
  action: AuditAction;
  outcome: AuditOutcome;
  target: string | null;
  details?: Record<string, unknown>;
}

export interface Guard {
  page(ctx: Context, area: AdminArea): Promise<AdminRequest | null>;
  change(ctx: Context, area: AdminArea, change: Change): Promise<AdminRequest | null>;
  /** Append an event for this request: in `trx` to commit with the change, else on its own. */
  record(ctx: Context, actor: string, e: AuditFields, trx?: Db): Promise<void>;
  html(ctx: Context, body: string, status?: number): void;
  /**
   * Do a change and record it. With `transaction`, the change and its event commit together
   * (the services compose into a caller's transaction); otherwise the event follows the change.
   * A GatehouseError (LAST_OWNER, VALIDATION, KEY_ROTATION_TOO_SOON, …) is recorded as a
   * failure and handed back for the page to show; anything else propagates.
   */
  perform<T>(
    ctx: Context,
    r: AdminRequest,
    e: { action: AuditAction; target: string | null },
    work: (db: Db) => Promise<{ result: T; details: Record<string, unknown>; target?: string }>,
    opts: { transaction: boolean },
  ): Promise<{ ok: true; result: T } | { ok: false; error: GatehouseError }>;
}

/** A target as the audit log accepts it (printable, bounded), or null. */
function cleanTarget(target: string | null): string | null {
  if (target === null) return null;
  const t = target.slice(0, 256);
  return t.length > 0 && t.isWellFormed() && !/\p{Cc}/u.test(t) ? t : null;
}

export function loginUrl(returnTo: string, fresh = false): string {
  const q = new URLSearchParams({ ...(fresh ? { max_age: String(FRESH_AUTH_SECONDS) } : {}), return_to: returnTo });
  return `/admin/login?${q}`;
}

export function createGuard(deps: { db: Db; csrf: Csrf }): Guard {
  const { db } = deps;

  function html(ctx: Context, body: string, status = 200) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = body;
  }

  async function record(ctx: Context, actor: string, e: AuditFields, trx?: Db) {
    await appendAudit(trx ?? db, {
      action: e.action,
      outcome: e.outcome,
      actor,
      target: cleanTarget(e.target),
      ip: ctx.ip,
      requestId: ctx.state.requestId,
      details: e.details ?? {},
    });
  }

  async function signedIn(ctx: Context, area: AdminArea, returnTo: string): Promise<AdminRequest | 'login' | { denied: Account }> {
    const found = await findAdminSession(db, ctx.cookies.get(ADMIN_SESSION_COOKIE));
    if (!found) {
      ctx.status = 303;
      ctx.redirect(loginUrl(returnTo));
      return 'login';
    }
    const access = adminAccess(found.account);
    if (!access[area]) {
      html(ctx, deniedPage({ email: found.account.email, role: found.account.role, auditOnly: access.audit }), 403);
      return { denied: found.account };
    }
    const frame: AdminFrame = {
      nonce: ctx.state.cspNonce,
      csrf: deps.csrf.token(ctx),
      email: found.account.email,
      role: found.account.role,
      access,
      stale: !isFresh(found.session),
    };
    return { ...found, access, frame };
  }

  return {
    html,
    record,
    async perform(ctx, r, e, work, opts) {
      const actor = r.account.id;
      try {
        if (opts.transaction) {
          const result = await db.transaction().execute(async (trx) => {
            const w = await work(trx);
            await record(ctx, actor, { ...e, target: w.target ?? e.target, outcome: 'success', details: w.details }, trx); // last: it takes the append lock
            return w.result;
          });
          return { ok: true, result };
        }
        const w = await work(db);
        await record(ctx, actor, { ...e, target: w.target ?? e.target, outcome: 'success', details: w.details });
        return { ok: true, result: w.result };
      } catch (err) {
        if (!isGatehouseError(err)) throw err;
        // The code and field only: a message may quote what was typed, and that may be anything.
        const field = typeof err.details?.field === 'string' ? err.details.field.slice(0, 64) : undefined;
        await record(ctx, actor, { ...e, outcome: 'failure', details: { error: err.code, ...(field ? { field } : {}) } });
        return { ok: false, error: err };
      }
    },
    async page(ctx, area) {
      ctx.set('cache-control', 'no-store');
      const r = await signedIn(ctx, area, safeReturnTo(ctx.originalUrl, '/admin'));
      return r === 'login' || 'denied' in r ? null : r;
    },
    async change(ctx, area, change) {
      ctx.set('cache-control', 'no-store');
      deps.csrf.verify(ctx, (ctx.request.body as Record<string, unknown> | undefined)?._csrf);
      const r = await signedIn(ctx, area, change.returnTo);
      if (r === 'login') return null;
      if ('denied' in r) {
        // Refused at the server whatever the page showed; worth a line in the log.
        await record(ctx, r.denied.id, {
          action: change.action,
          outcome: 'denied',
          target: change.target,
          details: { reason: 'not_permitted', role: r.denied.role },
        });
        return null;
      }
      if (!isFresh(r.session)) {
        ctx.status = 303;
        ctx.redirect(loginUrl(withNotice(change.returnTo, 'reauth'), true));
        return null;
      }
      return r;
    },
  };
}

/** `path` with ?done=<code> (a fixed notice chosen by code, never text from the request). */
export function withNotice(path: string, code: string): string {
  const url = new URL(path, 'http://x.invalid');
  url.searchParams.set('done', code);
  return url.pathname + url.search;
}

// The outbox of logout tokens (table backchannel_logout; src/oidc/backchannel-logout.ts delivers).
// A row is written in the same transaction as the end of the session it announces, one per client
// that took part in the session (the session's `authorizations`) and registered a
// backchannel_logout_uri, so a rolled-back change announces nothing and a committed one is
// announced even if this process dies right after.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/handle.ts';

export type LogoutReason = 'signout' | 'password_change' | 'disabled' | 'sessions_ended' | 'factor_reset' | 'session_ended' | 'expired';

export interface LogoutDelivery {
  id: string;
  client_id: string;
  sub: string;
  sid: string | null;
  reason: string;
  attempts: number;
}

/** Each (session, client) pair of the sessions `sessions` selects, for clients with a logout URI. */
function pairsOf(sessions: ReturnType<typeof sql>, reason: LogoutReason, now: Date) {
  return sql`insert into backchannel_logout (id, client_id, sub, sid, reason, next_attempt_at, created_at)
select gen_random_uuid()::text, a.key, s.payload->>'accountId', a.value->>'sid', ${reason}, ${now}, ${now}
from (${sessions}) s
cross join lateral jsonb_each(case when jsonb_typeof(s.payload->'authorizations') = 'object' then s.payload->'authorizations' else '{}'::jsonb end) a
join client c on c.client_id = a.key
where s.payload->>'accountId' is not null and c.metadata->>'backchannel_logout_uri' is not null`;
}

/**
 * Announce the end of a person's sessions: all of them, all but `exceptSessionId` (the row id of
 * the session a password change was made from), or only the one whose uid is `sessionUid`. Call it
 * in the transaction that deletes them, before the delete.
 */
export async function enqueueAccountSessions(
  db: Db,
  accountId: string,
  reason: LogoutReason,
  opts: { exceptSessionId?: string | null; sessionUid?: string } = {},
): Promise<number> {
  let sessions = sql`select payload from oidc_payload where model = 'Session' and payload->>'accountId' = ${accountId}`;
  if (opts.exceptSessionId) sessions = sql`${sessions} and id <> ${opts.exceptSessionId}`;
  if (opts.sessionUid !== undefined) sessions = sql`${sessions} and uid = ${opts.sessionUid}`;
  const res = await pairsOf(sessions, reason, new Date()).execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/** One logout token per client, as oidc-provider's own end-session asks (`Client#backchannelLogout`). */
export async function enqueueLogout(
  db: Db,
  row: { clientId: string; sub: string; sid: string | null; reason: LogoutReason },
): Promise<void> {
  await db
    .insertInto('backchannel_logout')
    .values({ id: crypto.randomUUID(), client_id: row.clientId, sub: row.sub, sid: row.sid, reason: row.reason })
    .execute();
}

/**
 * Sessions past their expiry are deleted and announced in one statement, so when several
 * instances clean up at once each expired session is announced exactly once.
 */
export async function endExpiredSessions(db: Db, now = new Date()): Promise<number> {
  const res = await sql`with gone as (
  delete from oidc_payload where model = 'Session' and expires_at < ${now} returning payload
)
${pairsOf(sql`select payload from gone`, 'expired', now)}`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/**
 * Take up to `limit` deliveries that are due: their attempt count goes up and they are leased
 * until `leaseUntil`, so another instance does not send them meanwhile (SKIP LOCKED: instances
 * polling together take different rows).
 */
export async function claimDue(db: Db, now: Date, leaseUntil: Date, limit: number): Promise<LogoutDelivery[]> {
  return db
    .updateTable('backchannel_logout')
    .set({ attempts: sql`attempts + 1`, next_attempt_at: leaseUntil })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('backchannel_logout')
        .select('id')
        .where('next_attempt_at', '<=', now)
        .orderBy('next_attempt_at')
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .returning(['id', 'client_id', 'sub', 'sid', 'reason', 'attempts'])
    .execute();
}

export async function deleteDelivery(db: Db, id: string): Promise<void> {
  await db.deleteFrom('backchannel_logout').where('id', '=', id).execute();
}

export async function retryDeliveryAt(db: Db, id: string, at: Date): Promise<void> {
  await db.updateTable('backchannel_logout').set({ next_attempt_at: at }).where('id', '=', id).execute();
}

/** Deliveries still waiting (tests, and the README's "what is pending" query). */
export function pendingDeliveries(db: Db) {
  return db.selectFrom('backchannel_logout').selectAll().orderBy('created_at').execute();
}

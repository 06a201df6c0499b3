import { sql } from 'kysely';
import type { Db } from '../db/handle.ts';

/**
 * Restart a live sign-in session's idle timer without rewriting the rest of its payload (an
 * authorization request may be saving it at the same moment): the new expiry is `now + idle`,
 * never past `loginTs + max`. Both the row's expiry and the payload's `exp` move, since
 * oidc-provider checks the second. Returns false when no live session has that uid.
 */
export async function extendSessionByUid(db: Db, uid: string, nowSeconds: number, idleTtl: number, maxTtl: number): Promise<boolean> {
  const exp = sql<number>`least(${nowSeconds + idleTtl}::bigint, coalesce((payload->>'loginTs')::bigint + ${maxTtl}::bigint, ${nowSeconds + idleTtl}::bigint))`;
  const res = await db
    .updateTable('oidc_payload')
    .set({
      expires_at: sql`to_timestamp(${exp})`,
      payload: sql`jsonb_set(payload, '{exp}', to_jsonb(${exp}))`,
    })
    .where('model', '=', 'Session')
    .where('uid', '=', uid)
    .where('expires_at', '>', new Date(nowSeconds * 1000))
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

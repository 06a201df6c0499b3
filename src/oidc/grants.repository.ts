import type { Db } from '../db/handle.ts';

/** The person and client of a grant that still exists and has not expired. */
export async function findLiveGrant(db: Db, grantId: string): Promise<{ accountId: string; clientId: string } | undefined> {
  if (typeof grantId !== 'string' || grantId.length === 0 || grantId.length > 200) return undefined;
  const row = await db
    .selectFrom('oidc_payload')
    .select('payload')
    .where('model', '=', 'Grant')
    .where('id', '=', grantId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
    .executeTakeFirst();
  const p = row?.payload as { accountId?: unknown; clientId?: unknown } | undefined;
  return p && typeof p.accountId === 'string' && typeof p.clientId === 'string'
    ? { accountId: p.accountId, clientId: p.clientId }
    : undefined;
}

// Passkeys and their ceremonies' challenges (src/mfa/webauthn.ts holds the logic; the Kysely
// code lives here). A challenge is taken out with one DELETE ... RETURNING, so it is single-use
// even under concurrent requests.
import type { Insertable, Selectable } from 'kysely';
import type { WebauthnChallengeTable, WebauthnCredentialTable } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export type Ceremony = WebauthnChallengeTable['ceremony'];
export type PasskeyRow = Selectable<WebauthnCredentialTable>;

/** One live challenge per scope: starting again replaces the previous one. */
export interface ChallengeRow {
  ceremony: Ceremony;
  challenge: string;
  account_id: string | null;
  expires_at: Date;
}

export async function storeChallenge(db: Db, scope: string, row: ChallengeRow): Promise<void> {
  await db
    .insertInto('webauthn_challenge')
    .values({ id: scope, ...row })
    .onConflict((oc) => oc.column('id').doUpdateSet(row))
    .execute();
}

export function takeChallenge(db: Db, scope: string, ceremony: Ceremony) {
  return db
    .deleteFrom('webauthn_challenge')
    .where('id', '=', scope)
    .where('ceremony', '=', ceremony)
    .returning(['challenge', 'account_id', 'expires_at'])
    .executeTakeFirst();
}

/** Id and transports of a person's passkeys: what excludeCredentials / allowCredentials list. */
export function passkeyDescriptors(db: Db, accountId: string) {
  return db.selectFrom('webauthn_credential').select(['id', 'transports']).where('account_id', '=', accountId).execute();
}

export function findPasskey(db: Db, id: string): Promise<PasskeyRow | undefined> {
  return db.selectFrom('webauthn_credential').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function passkeyExists(db: Db, id: string): Promise<boolean> {
  return !!(await db.selectFrom('webauthn_credential').select('id').where('id', '=', id).executeTakeFirst());
}

export async function insertPasskey(db: Db, row: Insertable<WebauthnCredentialTable>): Promise<void> {
  await db.insertInto('webauthn_credential').values(row).execute();
}

export async function recordPasskeyUse(db: Db, id: string, counter: number): Promise<void> {
  await db.updateTable('webauthn_credential').set({ counter, last_used_at: new Date() }).where('id', '=', id).execute();
}

export function listPasskeys(db: Db, accountId: string) {
  return db
    .selectFrom('webauthn_credential')
    .select(['id', 'name', 'created_at', 'last_used_at', 'device_type'])
    .where('account_id', '=', accountId)
    .orderBy('created_at')
    .execute();
}

export async function deletePasskey(db: Db, accountId: string, id: string): Promise<boolean> {
  const res = await db.deleteFrom('webauthn_credential').where('account_id', '=', accountId).where('id', '=', id).executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}

// The `enrollment` table: the choices made along an invitation's enrollment (src/accounts/enrollment.ts).
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Database, EnrollmentTable } from '../db/schema.ts';

type Q = Kysely<Database> | Transaction<Database>;
export type EnrollmentRow = Selectable<EnrollmentTable>;

export function findLiveEnrollment(db: Q, invitationId: string, now: Date): Promise<EnrollmentRow | undefined> {
  return db.selectFrom('enrollment').selectAll().where('invitation_id', '=', invitationId).where('expires_at', '>', now).executeTakeFirst();
}

export async function upsertEnrollment(db: Q, invitationId: string, row: Omit<EnrollmentRow, 'invitation_id'>): Promise<void> {
  await db.insertInto('enrollment').values({ invitation_id: invitationId, ...row }).onConflict((oc) => oc.column('invitation_id').doUpdateSet(row)).execute();
}

export async function deleteEnrollment(db: Q, invitationId: string): Promise<void> {
  await db.deleteFrom('enrollment').where('invitation_id', '=', invitationId).execute();
}

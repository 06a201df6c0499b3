// The `enrollment` table: the choices made along an invitation's enrollment (src/accounts/enrollment.ts).
import type { Selectable } from 'kysely';
import type { EnrollmentTable } from '../db/schema.ts';
import type { Db } from '../db/handle.ts';

export type EnrollmentRow = Selectable<EnrollmentTable>;

export function findLiveEnrollment(db: Db, invitationId: string, now: Date): Promise<EnrollmentRow | undefined> {
  return db.selectFrom('enrollment').selectAll().where('invitation_id', '=', invitationId).where('expires_at', '>', now).executeTakeFirst();
}

export async function upsertEnrollment(db: Db, invitationId: string, row: Omit<EnrollmentRow, 'invitation_id'>): Promise<void> {
  await db
    .insertInto('enrollment')
    .values({ invitation_id: invitationId, ...row })
    .onConflict((oc) => oc.column('invitation_id').doUpdateSet(row))
    .execute();
}

/** The holder of a recovery link proved what it asks for. */
export async function markProven(db: Db, invitationId: string, at: Date): Promise<void> {
  await db.updateTable('enrollment').set({ proven_at: at }).where('invitation_id', '=', invitationId).execute();
}

export async function deleteEnrollment(db: Db, invitationId: string): Promise<void> {
  await db.deleteFrom('enrollment').where('invitation_id', '=', invitationId).execute();
}

/** Enrollments in progress that were abandoned (the invitation link itself is kept). */
export async function deleteExpiredEnrollments(db: Db, now: Date = new Date()): Promise<number> {
  const res = await db.deleteFrom('enrollment').where('expires_at', '<', now).executeTakeFirst();
  return Number(res.numDeletedRows);
}

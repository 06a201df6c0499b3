// Expired rows of every table that keeps them, deleted by each table's repository. Runs in the
// background on every instance (src/jobs/background.ts); deletes are idempotent, so instances
// running it at the same time only repeat each other's work.
import { deleteExpiredPayloads } from '../oidc/adapter.ts';
import { endExpiredSessions } from '../oidc/backchannel-logout.repository.ts';
import { eraseExpiredKeys } from '../keys/keys.service.ts';
import { deleteExpiredFlows } from '../signin/login-flow.ts';
import { deleteExpiredChallenges } from '../mfa/challenges.repository.ts';
import { deleteExpiredEnrollments } from '../accounts/enrollment.repository.ts';
import { deleteExpiredRateLimits } from '../signin/rate-limit.repository.ts';
import type { Db } from '../db/handle.ts';

export interface CleanupCounts {
  /** Logout tokens queued for sessions that expired (idle or at their cap). */
  expiredSessionLogouts: number;
  payloads: number;
  keys: number;
  flows: number;
  challenges: number;
  enrollments: number;
  rateLimits: number;
}

export async function cleanupExpired(db: Db): Promise<CleanupCounts> {
  // Expired sessions first: deleted and announced to their clients' logout URIs in one statement.
  const expiredSessionLogouts = await endExpiredSessions(db);
  const payloads = await deleteExpiredPayloads(db);
  const keys = await eraseExpiredKeys(db, new Date());
  const flows = await deleteExpiredFlows(db);
  const challenges = await deleteExpiredChallenges(db);
  const enrollments = await deleteExpiredEnrollments(db);
  const rateLimits = await deleteExpiredRateLimits(db);
  return { expiredSessionLogouts, payloads, keys, flows, challenges, enrollments, rateLimits };
}

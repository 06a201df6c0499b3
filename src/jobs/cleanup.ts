// Expired rows of every table that keeps them, deleted by each table's repository. Runs in the
// background on every instance (src/jobs/background.ts); deletes are idempotent, so instances
// running it at the same time only repeat each other's work.
import { deleteExpiredPayloads } from '../oidc/adapter.ts';
import { eraseExpiredKeys } from '../keys/keys.service.ts';
import { deleteExpiredFlows } from '../signin/login-flow.ts';
import { deleteExpiredChallenges } from '../mfa/challenges.repository.ts';
import { deleteExpiredEnrollments } from '../accounts/enrollment.repository.ts';
import { deleteExpiredRateLimits } from '../signin/rate-limit.repository.ts';
import type { Db } from '../db/handle.ts';

export interface CleanupCounts {
  payloads: number;
  keys: number;
  flows: number;
  challenges: number;
  enrollments: number;
  rateLimits: number;
}

export async function cleanupExpired(db: Db): Promise<CleanupCounts> {
  const payloads = await deleteExpiredPayloads(db);
  const keys = await eraseExpiredKeys(db, new Date());
  const flows = await deleteExpiredFlows(db);
  const challenges = await deleteExpiredChallenges(db);
  const enrollments = await deleteExpiredEnrollments(db);
  const rateLimits = await deleteExpiredRateLimits(db);
  return { payloads, keys, flows, challenges, enrollments, rateLimits };
}

// Input checks shared by accounts and invitations: one message per field, safe to show.
import { z } from 'zod';
import { isPermission, isRole, isServicePermission } from '../authz/model.ts';

// Re-exported so callers find every input check of accounts here.
export { parseOrThrow } from '../errors.ts';

export const MAX_PERMISSIONS = 100;

export const roleSchema = z.string().refine(isRole, 'is not a role (viewer, operator, admin, owner, auditor)');
export const permissionsSchema = z
  .array(
    z
      .string()
      .refine(isPermission, 'must look like <kind>:<id>:<action>, for example agent:summarizer:inject')
      // audit:append and its kind are for service clients: a person's token never carries them.
      .refine((p) => !isServicePermission(p), 'is a service client permission; a person cannot hold it'),
  )
  .max(MAX_PERMISSIONS, `at most ${MAX_PERMISSIONS} permissions`)
  .transform((list) => [...new Set(list)]);

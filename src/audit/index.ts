// The audit log's public API: what the rest of Gatehouse imports.
export { AUDIT_ACTIONS, AUDIT_OUTCOMES, type AuditAction } from './actions.ts';
export { appendAudit, appendAuditBatch, AuditQueue, type AuditEvent } from './audit.service.ts';
export { scrubDetails, validateEvent, type AuditEventInput } from './event.ts';
export { canonicalJson, eventHash, GENESIS_HASH } from './canonical.ts';
export { writeCheckpoint, scheduleCheckpoints, CHECKPOINT_TYP, type Checkpoint } from './checkpoint.ts';
export { verifyAudit, type VerifyResult } from './verify.ts';
export { listAudit, auditQuerySchema, AUDIT_PAGE_MAX, type AuditQuery, type AuditPage } from './query.ts';

// Every migration, in order. Listed by hand rather than read from the folder so that the set
// that runs is the set that was reviewed, whatever else lies in the directory.
import type { Migration } from 'kysely/migration';
import * as core from './2026-11-26T09-00_core.ts';
import * as accounts from './2026-11-26T10-00_accounts.ts';
import * as audit from './2026-11-26T11-00_audit.ts';
import * as signin from './2026-11-26T12-00_signin.ts';
import * as admin from './2026-11-26T13-00_admin.ts';
import * as keyRevoked from './2026-11-27T09-00_key_revoked.ts';
import * as clientRateLimit from './2026-11-27T10-00_client-rate-limit.ts';
import * as clientIntrospect from './2026-11-27T11-00_client-introspect.ts';
import * as recovery from './2026-11-27T12-00_recovery.ts';
import * as masterKeyCheck from './2026-12-01T13-00_master-key-check.ts';
import * as agents from './2026-12-01T15-00_agents.ts';
import * as auditIngest from './2026-12-01T17-00_audit-ingest.ts';
import * as backchannelLogout from './2026-12-01T18-00_backchannel-logout.ts';

export const migrations: Record<string, Migration> = {
  '2026-11-26T09-00_core': core,
  '2026-11-26T10-00_accounts': accounts,
  '2026-11-26T11-00_audit': audit,
  '2026-11-26T12-00_signin': signin,
  '2026-11-26T13-00_admin': admin,
  '2026-11-27T09-00_key_revoked': keyRevoked,
  '2026-11-27T10-00_client-rate-limit': clientRateLimit,
  '2026-11-27T11-00_client-introspect': clientIntrospect,
  '2026-11-27T12-00_recovery': recovery,
  '2026-12-01T13-00_master-key-check': masterKeyCheck,
  '2026-12-01T15-00_agents': agents,
  '2026-12-01T17-00_audit-ingest': auditIngest,
  '2026-12-01T18-00_backchannel-logout': backchannelLogout,
};

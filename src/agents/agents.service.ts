// Agents as principals (docs/architecture.md, "Agents and delegation"): an AI agent of the
// agentserver with its own credentials. Its permissions and --max-role are a ceiling, never a grant:
// with client credentials it gets only an actor token (aud = Gatehouse's issuer), whose one use is
// to prove the agent's identity in a token exchange (src/oidc/token-exchange.ts).
import crypto from 'node:crypto';
import { z } from 'zod';
import { isRole } from '../authz/model.ts';
import { isCeilingPermission } from './narrowing.ts';
import * as clientsRepo from '../clients/clients.repository.ts';
import { hashClientSecret, newClientSecret } from '../clients/secret.ts';
import { DEFAULT_SECRET_OVERLAP_SECONDS, displayName, publicJwks, rotateClientSecret } from '../clients/clients.service.ts';
import { DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE, MAX_CLIENT_TOKEN_REQUESTS_PER_MINUTE } from '../clients/rate-limit.ts';
import { bumpVersion } from '../db/change-feed.ts';
import type { Db } from '../db/handle.ts';
import type { ClientRow } from '../db/schema.ts';
import { inTransaction } from '../db/transaction.ts';
import { GatehouseError, parseOrThrow } from '../errors.ts';
import * as repo from './agents.repository.ts';

export const AGENT_ID_PREFIX = 'agt_';
export const AGENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;

export function isAgentId(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(AGENT_ID_PREFIX) && value.length <= 200;
}

function newAgentId(): string {
  return `${AGENT_ID_PREFIX}${crypto.randomBytes(15).toString('base64url')}`;
}

const createSchema = z
  .object({
    name: displayName,
    permissions: z
      .array(
        z
          .string()
          .refine(isCeilingPermission, 'must look like <kind>:<id>:<action>, for example agent:summarizer:inject or agent:summarizer:*'),
      )
      .max(100)
      .default([]),
    maxRole: z.string().refine(isRole, 'is not a role (viewer, operator, admin, owner, auditor)').optional(),
    auth: z.enum(AGENT_AUTH_METHODS).default('client_secret_basic'),
    jwks: publicJwks.optional(),
    rateLimit: z
      .number()
      .int('must be a whole number of token requests a minute')
      .min(1, 'must be at least 1 token request a minute')
      .max(MAX_CLIENT_TOKEN_REQUESTS_PER_MINUTE, `must be at most ${MAX_CLIENT_TOKEN_REQUESTS_PER_MINUTE} token requests a minute`)
      .optional(),
  })
  .superRefine((v, ctx) => {
    if (v.permissions.length === 0 && !v.maxRole)
      ctx.addIssue({ code: 'custom', path: ['permissions'], message: 'an agent needs at least one --permission or a --max-role' });
    if (v.auth === 'private_key_jwt' && !v.jwks)
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'private_key_jwt needs the agent public keys (a JWKS)' });
    if (v.auth !== 'private_key_jwt' && v.jwks)
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'a JWKS goes with --auth private_key_jwt' });
  });

export type CreateAgentInput = z.input<typeof createSchema>;

export interface CreatedAgent {
  agent_id: string;
  /** Shown once; Gatehouse keeps only its hash. Absent with private_key_jwt. */
  client_secret?: string;
}

export async function createAgent(db: Db, input: CreateAgentInput): Promise<CreatedAgent> {
  const v = parseOrThrow(createSchema, input);
  const agentId = newAgentId();
  const secret = v.auth === 'private_key_jwt' ? undefined : newClientSecret();
  const metadata: Record<string, unknown> = {
    client_name: v.name,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: v.auth,
  };
  if (v.jwks) metadata.jwks = v.jwks;
  await inTransaction(db, async (trx) => {
    await clientsRepo.insertClient(trx, {
      client_id: agentId,
      name: v.name,
      kind: 'agent',
      metadata: JSON.stringify(metadata),
      secret_hash: secret ? hashClientSecret(secret) : null,
      // For an agent, `roles` holds the --max-role ceiling and `permissions` the permission ceiling.
      roles: JSON.stringify(v.maxRole ? [v.maxRole] : []),
      permissions: JSON.stringify([...new Set(v.permissions)]),
      allowed_cidrs: '[]',
      rate_limit: v.rateLimit ?? null,
    });
    await bumpVersion(trx, 'clients');
  });
  return secret ? { agent_id: agentId, client_secret: secret } : { agent_id: agentId };
}

export interface AgentSummary {
  agent_id: string;
  name: string;
  permissions: string[];
  max_role: string | null;
  auth: string;
  disabled: boolean;
  rate_limit: number;
  created_at: string;
}

function summarize(row: ClientRow): AgentSummary {
  const m = row.metadata as { token_endpoint_auth_method?: string };
  return {
    agent_id: row.client_id,
    name: row.name,
    permissions: row.permissions,
    max_role: row.roles[0] ?? null,
    auth: m.token_endpoint_auth_method ?? 'client_secret_basic',
    disabled: row.disabled === true,
    rate_limit: row.rate_limit ?? DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE,
    created_at: new Date(row.created_at).toISOString(),
  };
}

export async function listAgents(db: Db): Promise<AgentSummary[]> {
  return (await repo.listAgents(db)).map(summarize);
}

async function mustFind(db: Db, agentId: unknown): Promise<ClientRow> {
  const row = isAgentId(agentId) ? await repo.findAgent(db, agentId) : undefined;
  if (!row) throw new GatehouseError('NOT_FOUND', `no agent with id ${JSON.stringify(String(agentId).slice(0, 200))}`);
  return row;
}

export async function getAgent(db: Db, agentId: string): Promise<AgentSummary> {
  return summarize(await mustFind(db, agentId));
}

/** Delete an agent: its credentials stop at once, and so do exchanges naming it in their chain. */
export async function deleteAgent(db: Db, agentId: string): Promise<void> {
  await mustFind(db, agentId);
  await inTransaction(db, async (trx) => {
    await clientsRepo.deleteClient(trx, agentId);
    await bumpVersion(trx, 'clients');
  });
}

/** Disable (or enable again) an agent: a disabled agent cannot authenticate nor act in an exchange. */
export async function setAgentDisabled(db: Db, agentId: string, disabled: boolean): Promise<void> {
  await mustFind(db, agentId);
  await inTransaction(db, async (trx) => {
    await repo.setAgentDisabled(trx, agentId, disabled);
    await bumpVersion(trx, 'clients');
  });
}

export async function rotateAgentSecret(db: Db, agentId: string, overlapSeconds = DEFAULT_SECRET_OVERLAP_SECONDS) {
  await mustFind(db, agentId);
  const r = await rotateClientSecret(db, agentId, overlapSeconds);
  return { agent_id: r.client_id, client_secret: r.client_secret, previous_secret_valid_until: r.previous_secret_valid_until };
}

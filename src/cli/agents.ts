// `gatehouse agents …`: agents as principals (docs/architecture.md, "Agents and delegation").
import fs from 'node:fs';
import {
  createAgent,
  deleteAgent,
  listAgents,
  rotateAgentSecret,
  setAgentDisabled,
  type CreateAgentInput,
} from '../agents/agents.service.ts';
import { DEFAULT_SECRET_OVERLAP_SECONDS } from '../clients/clients.service.ts';
import { GatehouseError } from '../errors.ts';
import type { Command } from './command.ts';

function readJwks(file: string | undefined): unknown {
  if (!file) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new GatehouseError('VALIDATION', `--jwks-file: cannot read a JSON Web Key Set from ${file} (${(err as Error).message})`);
  }
}

const CREATE_HELP = `An agent's permissions and role are a ceiling, never a grant: with its credentials it gets
only an actor token (aud = Gatehouse's issuer), which a client registered with
--grant token_exchange presents with a person's access token to get a delegated token
(RFC 8693) carrying the intersection of the person's rights, this ceiling and the request.

Options:
  --name NAME                 shown in the audit log and agents list (required)
  --permission KIND:ID:ACTION repeatable: the permission ceiling, e.g. 'agent:summarizer:*', 'thread:*:view'
  --max-role ROLE             the highest role a delegated token for this agent may carry
                              (viewer, operator, admin, owner, auditor); none by default
  --auth METHOD               client_secret_basic (default), client_secret_post, or private_key_jwt (--jwks-file)
  --jwks-file FILE            the agent's public keys (a JWKS), for private_key_jwt
  --rate-limit N              token requests a minute at /token (default 600)
  --json                      print {"agent_id", "client_secret"?} as JSON (the secret is shown once)`;

function agentIdOf(v: Record<string, any>): string {
  if (!v['agent-id']) throw new GatehouseError('VALIDATION', '--agent-id is required');
  return v['agent-id'];
}

export const agentCommands: Command[] = [
  {
    name: 'agents create',
    summary: 'register an agent (its own credentials; permissions are a ceiling)',
    help: CREATE_HELP,
    options: {
      name: { type: 'string' },
      permission: { type: 'string', multiple: true },
      'max-role': { type: 'string' },
      auth: { type: 'string' },
      'jwks-file': { type: 'string' },
      'rate-limit': { type: 'string' },
    },
    async run(ctx, v) {
      const rateLimit = v['rate-limit'] === undefined ? undefined : Number(v['rate-limit']);
      if (rateLimit !== undefined && (!/^\d+$/.test(v['rate-limit']) || !Number.isSafeInteger(rateLimit)))
        throw new GatehouseError('VALIDATION', '--rate-limit must be a whole number of token requests a minute');
      const created = await ctx.change(
        (trx) =>
          createAgent(trx, {
            name: v.name ?? '',
            permissions: v.permission,
            maxRole: v['max-role'],
            auth: v.auth as CreateAgentInput['auth'],
            jwks: readJwks(v['jwks-file']) as any,
            rateLimit,
          }),
        (a) => ({
          action: 'agent.create',
          outcome: 'success',
          actor: 'cli',
          target: a.agent_id,
          details: {
            name: v.name,
            permissions: v.permission ?? [],
            max_role: v['max-role'] ?? null,
            auth: v.auth ?? 'client_secret_basic',
          },
        }),
      );
      const text = created.client_secret
        ? `agent_id:      ${created.agent_id}\nclient_secret: ${created.client_secret}\nThe secret is shown once; Gatehouse keeps only its hash.`
        : `agent_id: ${created.agent_id}`;
      return { json: created, text };
    },
  },
  {
    name: 'agents list',
    summary: 'list agents',
    options: {},
    async run(ctx) {
      const agents = await listAgents(ctx.db.kysely);
      const text = agents.length
        ? agents
            .map(
              (a) =>
                `${a.agent_id}  ${a.name}  max-role=${a.max_role ?? '-'}  permissions=${a.permissions.join(',') || '-'}${a.disabled ? '  DISABLED' : ''}`,
            )
            .join('\n')
        : 'no agents';
      return { json: { agents }, text };
    },
  },
  {
    name: 'agents delete',
    summary: 'delete an agent (its credentials and every exchange naming it stop at once)',
    options: { 'agent-id': { type: 'string' } },
    async run(ctx, v) {
      const id = agentIdOf(v);
      await ctx.change(
        (trx) => deleteAgent(trx, id),
        () => ({ action: 'agent.delete', outcome: 'success', actor: 'cli', target: id, details: {} }),
      );
      return { json: { ok: true, agent_id: id }, text: `deleted ${id}` };
    },
  },
  {
    name: 'agents disable',
    summary: 'disable an agent (it can no longer authenticate nor act for anyone)',
    options: { 'agent-id': { type: 'string' } },
    async run(ctx, v) {
      const id = agentIdOf(v);
      await ctx.change(
        (trx) => setAgentDisabled(trx, id, true),
        () => ({ action: 'agent.disable', outcome: 'success', actor: 'cli', target: id, details: {} }),
      );
      return { json: { ok: true, agent_id: id, disabled: true }, text: `disabled ${id}` };
    },
  },
  {
    name: 'agents enable',
    summary: 'enable a disabled agent again',
    options: { 'agent-id': { type: 'string' } },
    async run(ctx, v) {
      const id = agentIdOf(v);
      await ctx.change(
        (trx) => setAgentDisabled(trx, id, false),
        () => ({ action: 'agent.enable', outcome: 'success', actor: 'cli', target: id, details: {} }),
      );
      return { json: { ok: true, agent_id: id, disabled: false }, text: `enabled ${id}` };
    },
  },
  {
    name: 'agents rotate-secret',
    summary: 'issue a new agent secret (the old one works for --overlap seconds)',
    options: { 'agent-id': { type: 'string' }, overlap: { type: 'string' } },
    async run(ctx, v) {
      const id = agentIdOf(v);
      const overlap = v.overlap === undefined ? DEFAULT_SECRET_OVERLAP_SECONDS : Number(v.overlap);
      if (!Number.isInteger(overlap) || overlap < 0 || overlap > 30 * 86400)
        throw new GatehouseError('VALIDATION', '--overlap must be a whole number of seconds from 0 to 2592000');
      const r = await ctx.change(
        (trx) => rotateAgentSecret(trx, id, overlap),
        () => ({ action: 'agent.secret_rotate', outcome: 'success', actor: 'cli', target: id, details: { overlap_seconds: overlap } }),
      );
      return {
        json: r,
        text: `agent_id:      ${r.agent_id}\nclient_secret: ${r.client_secret}\n${r.previous_secret_valid_until ? `The previous secret works until ${r.previous_secret_valid_until}.` : 'The previous secret no longer works.'}`,
      };
    },
  },
];

// Agents: list, register (permission ceiling, highest role), delete. The secret is shown once, in
// the answer to the POST that made it. Key-based agents and secret rotation: the CLI
// (`gatehouse agents …`).
import type Router from '@koa/router';
import type { Context } from 'koa';
import { createAgent, deleteAgent, getAgent, listAgents } from '../agents/agents.service.ts';
import { EMPTY_AGENT_FORM, agentSecretPage, agentsPage, type AgentForm } from '../../views/admin/agents.ts';
import type { Db } from '../db/handle.ts';
import { withNotice, type AdminRequest, type Guard } from './guard.ts';
import { one, splitList } from './input.ts';
import { noticeFor } from './notices.ts';

export function agentRoutes(router: Router, deps: { db: Db; guard: Guard }): void {
  const { db, guard } = deps;
  const body = (ctx: Context) => (ctx.request.body ?? {}) as Record<string, unknown>;

  async function show(
    ctx: Context,
    r: AdminRequest,
    extra: { form?: AgentForm; notice?: string | null; error?: string | null } = {},
    status = 200,
  ) {
    guard.html(
      ctx,
      agentsPage(r.frame, {
        agents: await listAgents(db),
        form: extra.form ?? EMPTY_AGENT_FORM,
        notice: extra.notice ?? null,
        error: extra.error ?? null,
      }),
      status,
    );
  }

  router.get('/admin/agents', async (ctx) => {
    const r = await guard.page(ctx, 'manage');
    if (r) await show(ctx, r, { notice: noticeFor(ctx.query.done) });
  });

  router.post('/admin/agents', async (ctx) => {
    const r = await guard.change(ctx, 'manage', { action: 'agent.create', target: null, returnTo: '/admin/agents' });
    if (!r) return;
    const b = body(ctx);
    const form: AgentForm = { name: one(b.name, 200), permissions: one(b.permissions, 10_000), maxRole: one(b.max_role, 40) };
    const done = await guard.perform(
      ctx,
      r,
      { action: 'agent.create', target: null },
      async (q) => {
        const permissions = splitList(form.permissions); // checked by the service (action wildcards allowed)
        const created = await createAgent(q, { name: form.name, permissions, ...(form.maxRole ? { maxRole: form.maxRole } : {}) });
        return {
          result: created,
          target: created.agent_id,
          details: { agent_id: created.agent_id, name: form.name, permissions, max_role: form.maxRole || null },
        };
      },
      { transaction: true },
    );
    if (!done.ok) return show(ctx, r, { form, error: done.error.message }, done.error.status);
    guard.html(ctx, agentSecretPage(r.frame, { agentId: done.result.agent_id, name: form.name, secret: done.result.client_secret! }));
  });

  router.post('/admin/agents/:id/delete', async (ctx) => {
    const id = ctx.params.id!.slice(0, 200);
    const r = await guard.change(ctx, 'manage', { action: 'agent.delete', target: id, returnTo: '/admin/agents' });
    if (!r) return;
    const done = await guard.perform(
      ctx,
      r,
      { action: 'agent.delete', target: id },
      async (q) => {
        const before = await getAgent(q, id);
        await deleteAgent(q, id);
        return { result: null, details: { agent_id: id, name: before.name } };
      },
      { transaction: true },
    );
    if (!done.ok) return show(ctx, r, { error: done.error.message }, done.error.status);
    ctx.status = 303;
    ctx.redirect(withNotice('/admin/agents', 'agent_deleted'));
  });
}

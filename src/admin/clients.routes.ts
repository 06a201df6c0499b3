// Clients: list, create (a service with roles, permissions and allowed networks, or a browser
// application with redirect URIs), rotate a secret, delete. A secret is shown once, in the
// answer to the POST that made it, and never written anywhere else (not even the audit log).
import type Router from '@koa/router';
import type { Context } from 'koa';
import { ACCOUNT_CLIENT_ID } from '../self-service/account-client.ts';
import { createClient, deleteClient, listClients, rotateClientSecret, type CreateClientInput } from '../clients/clients.service.ts';
import { GatehouseError } from '../errors.ts';
import { EMPTY_CLIENT_FORM, clientsPage, secretOncePage, type ClientForm } from '../../views/admin/clients.ts';
import { ADMIN_CLIENT_ID } from './admin-client.ts';
import { withNotice, type AdminRequest, type Guard } from './guard.ts';
import { many, one, parsePermissions, splitList } from './input.ts';
import { noticeFor } from './notices.ts';
import type { Db } from '../db/handle.ts';

/** Clients Gatehouse registers for itself: recreated at every start, not managed here. */
export const BUILT_IN_CLIENTS = [ADMIN_CLIENT_ID, ACCOUNT_CLIENT_ID] as const;

export function readClientForm(b: Record<string, unknown>): ClientForm {
  return {
    name: one(b.name, 200),
    type: one(b.type) === 'browser' ? 'browser' : 'service',
    auth: one(b.auth, 40) || 'client_secret_basic',
    roles: many(b.roles).slice(0, 10),
    permissions: one(b.permissions, 10_000),
    cidrs: one(b.cidrs, 10_000),
    redirectUris: one(b.redirect_uris, 10_000),
    jwks: one(b.jwks, 10_000),
    subjectDn: one(b.subject_dn, 500),
    refresh: one(b.refresh) === '1',
    requireDpop: one(b.require_dpop) === '1',
    certificateBound: one(b.certificate_bound) === '1',
  };
}

/** The service's input from the form; validation proper is the service's. */
export function clientInput(f: ClientForm): CreateClientInput {
  let jwks: CreateClientInput['jwks'];
  if (f.jwks.trim()) {
    try {
      jwks = JSON.parse(f.jwks);
    } catch {
      throw new GatehouseError('VALIDATION', 'jwks: is not valid JSON (paste the client public JWKS, {"keys": [...]})', { field: 'jwks' });
    }
  }
  const service = f.type === 'service';
  return {
    name: f.name,
    grants: service ? ['client_credentials'] : ['authorization_code', ...(f.refresh ? (['refresh_token'] as const) : [])],
    auth: f.auth as CreateClientInput['auth'],
    roles: f.roles,
    permissions: parsePermissions(f.permissions),
    allowedCidrs: splitList(f.cidrs),
    redirectUris: splitList(f.redirectUris),
    ...(jwks ? { jwks } : {}),
    ...(f.subjectDn.trim() ? { tlsSubjectDn: f.subjectDn.trim() } : {}),
    requireDpop: f.requireDpop,
    certificateBound: f.certificateBound,
  };
}

export function clientRoutes(router: Router, deps: { db: Db; guard: Guard }): void {
  const { db, guard } = deps;
  const body = (ctx: Context) => (ctx.request.body ?? {}) as Record<string, unknown>;

  async function show(
    ctx: Context,
    r: AdminRequest,
    extra: { form?: ClientForm; notice?: string | null; error?: string | null } = {},
    status = 200,
  ) {
    const clients = await listClients(db);
    guard.html(
      ctx,
      clientsPage(r.frame, {
        clients,
        builtIn: BUILT_IN_CLIENTS,
        form: extra.form ?? EMPTY_CLIENT_FORM,
        notice: extra.notice ?? null,
        error: extra.error ?? null,
      }),
      status,
    );
  }

  const refuseBuiltIn = (id: string) => {
    if ((BUILT_IN_CLIENTS as readonly string[]).includes(id))
      throw new GatehouseError('VALIDATION', `${id} is built into Gatehouse and cannot be changed here.`);
  };

  router.get('/admin/clients', async (ctx) => {
    const r = await guard.page(ctx, 'manage');
    if (r) await show(ctx, r, { notice: noticeFor(ctx.query.done) });
  });

  router.post('/admin/clients', async (ctx) => {
    const r = await guard.change(ctx, 'manage', { action: 'client.create', target: null, returnTo: '/admin/clients' });
    if (!r) return;
    const form = readClientForm(body(ctx));
    const done = await guard.perform(
      ctx,
      r,
      { action: 'client.create', target: null },
      async (q) => {
        const input = clientInput(form);
        const created = await createClient(q, input);
        const details = {
          client_id: created.client_id,
          name: form.name,
          kind: form.type,
          grants: input.grants,
          auth: input.auth,
          roles: input.roles,
          permissions: input.permissions,
          allowed_cidrs: input.allowedCidrs,
          redirect_uris: input.redirectUris,
          ...(input.requireDpop ? { require_dpop: true } : {}),
          ...(input.certificateBound ? { certificate_bound: true } : {}),
        };
        return { result: created, target: created.client_id, details };
      },
      { transaction: true },
    );
    if (!done.ok) return show(ctx, r, { form, error: done.error.message }, done.error.status);
    guard.html(
      ctx,
      secretOncePage(r.frame, {
        title: 'Client created',
        clientId: done.result.client_id,
        name: form.name,
        secret: done.result.client_secret ?? null,
      }),
    );
  });

  router.post('/admin/clients/:id/rotate-secret', async (ctx) => {
    const id = ctx.params.id!.slice(0, 200);
    const r = await guard.change(ctx, 'manage', { action: 'client.secret_rotate', target: id, returnTo: '/admin/clients' });
    if (!r) return;
    const done = await guard.perform(
      ctx,
      r,
      { action: 'client.secret_rotate', target: id },
      async (q) => {
        refuseBuiltIn(id);
        const rotated = await rotateClientSecret(q, id);
        return { result: rotated, details: { client_id: id, previous_valid_until: rotated.previous_secret_valid_until } };
      },
      { transaction: true },
    );
    if (!done.ok) return show(ctx, r, { error: done.error.message }, done.error.status);
    const name = (await listClients(db)).find((c) => c.client_id === id)?.name ?? id;
    guard.html(
      ctx,
      secretOncePage(r.frame, {
        title: 'Secret rotated',
        clientId: id,
        name,
        secret: done.result.client_secret,
        previousValidUntil: done.result.previous_secret_valid_until,
      }),
    );
  });

  router.post('/admin/clients/:id/delete', async (ctx) => {
    const id = ctx.params.id!.slice(0, 200);
    const r = await guard.change(ctx, 'manage', { action: 'client.delete', target: id, returnTo: '/admin/clients' });
    if (!r) return;
    const done = await guard.perform(
      ctx,
      r,
      { action: 'client.delete', target: id },
      async (q) => {
        refuseBuiltIn(id);
        const before = (await listClients(q)).find((c) => c.client_id === id);
        await deleteClient(q, id);
        return { result: null, details: { client_id: id, name: before?.name ?? null, kind: before?.kind ?? null } };
      },
      { transaction: true },
    );
    if (!done.ok) return show(ctx, r, { error: done.error.message }, done.error.status);
    ctx.status = 303;
    ctx.redirect(withNotice('/admin/clients', 'client_deleted'));
  });
}

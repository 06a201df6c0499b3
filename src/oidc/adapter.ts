// oidc-provider's storage on Kysely: one table for every model it stores (sessions,
// interactions, grants, codes, refresh tokens, …). Clients are the exception: they are
// Gatehouse's own records, served from the client cache.
//  - Expiry is honoured on read: an expired row is never returned, even before cleanup (a device
//    code's row outlives its `exp` by DEVICE_CODE_EXPIRED_GRACE; oidc-provider refuses it as expired).
//  - consume() marks, never deletes: a consumed code or rotated refresh token stays findable
//    (with `consumed`) until it expires, which is how oidc-provider detects reuse and revokes
//    the grant (RFC 9700 §4.14.2, OAuth 2.1 §4.1.3).
import crypto from 'node:crypto';
import { CompiledQuery } from 'kysely';
import Provider, { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { ClientCache } from '../clients/client-cache.ts';
import type { Db } from '../db/handle.ts';
import { DEVICE_CODE_EXPIRED_GRACE } from './lifetimes.ts';

// Bearer values (refresh tokens, codes, opaque access tokens) are kept only as SHA-256 keys, and
// their `jti` (the value itself) is left out of the stored payload and put back on read: a copy
// of the database yields no usable token. Sessions keep their ids (oidc-provider looks them up
// by uid too, and needs the id back); their cookie is signed with keys derived from the master key.
const HASHED = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

const KEY_PREFIX = 'sha256:';

function storedId(model: string, id: string): string {
  if (!HASHED.has(model)) return id;
  // A device code read by its user code (the person's browser, RFC 8628 §3.3) comes back with its
  // stored key as jti, since its value is not stored; oidc-provider then saves and re-reads it by
  // that key while the person signs in. Never at /token: there the key must not stand in for the
  // code itself, or whoever read this table could redeem it.
  if (
    model === 'DeviceCode' &&
    id.startsWith(KEY_PREFIX) &&
    (Provider.ctx as { oidc?: { route?: string } } | undefined)?.oidc?.route !== 'token'
  ) {
    return id;
  }
  return `${KEY_PREFIX}${crypto.createHash('sha256').update(id).digest('base64url')}`;
}

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'ClientCredentials',
  'BackchannelAuthenticationRequest',
]);

export interface AdapterDeps {
  db: Db;
  clients: ClientCache;
}

export function adapterFactory(deps: AdapterDeps): (name: string) => Adapter {
  return (name: string) => (name === 'Client' ? new ClientAdapter(deps.clients) : new KyselyAdapter(name, deps.db));
}

class ClientAdapter implements Adapter {
  #clients: ClientCache;
  constructor(clients: ClientCache) {
    this.#clients = clients;
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    const record = await this.#clients.get(id);
    // A disabled agent does not exist for oidc-provider: it cannot authenticate anywhere.
    if (record?.disabled) return undefined;
    return (record?.metadata as AdapterPayload | undefined) ?? undefined;
  }
  // Clients are managed through Gatehouse (CLI, admin UI), never through oidc-provider.
  async upsert(): Promise<void> {
    throw new Error('clients are not written through oidc-provider');
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

/**
 * The two hottest statements (every request reads or writes a session, interaction, code or
 * grant), compiled once instead of built and compiled by Kysely on every call (about a tenth of
 * the sign-in's main thread went to query building). Each is compiled from sentinel values and
 * checked to take its parameters in the order `with` is given them.
 */
class Statement {
  readonly #sql: string;
  constructor(query: CompiledQuery, sentinels: readonly unknown[]) {
    const params = query.parameters;
    if (params.length !== sentinels.length || params.some((p, i) => p !== sentinels[i])) {
      throw new Error(`compiled statement takes its parameters in another order: ${query.sql}`);
    }
    this.#sql = query.sql;
  }
  with(values: readonly unknown[]): CompiledQuery {
    return CompiledQuery.raw(this.#sql, [...values]);
  }
}

const statements = new WeakMap<Db, Map<string, Statement>>();

function cached(db: Db, name: string, build: () => Statement): Statement {
  let byName = statements.get(db);
  if (!byName) statements.set(db, (byName = new Map()));
  let st = byName.get(name);
  if (!st) byName.set(name, (st = build()));
  return st;
}

function findStatement(db: Db, column: 'id' | 'uid' | 'user_code'): Statement {
  return cached(db, `find:${column}`, () => {
    const s = ['\u0000model', '\u0000key', new Date(0)] as const;
    const q = db
      .selectFrom('oidc_payload')
      .select(['id', 'payload', 'consumed_at'])
      .where('model', '=', s[0])
      .where(column, '=', s[1])
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', s[2])]))
      .compile();
    return new Statement(q, s);
  });
}

function upsertStatement(db: Db): Statement {
  return cached(db, 'upsert', () => {
    const s = ['\u0000model', '\u0000id', '\u0000payload', '\u0000grant', '\u0000uid', '\u0000code', new Date(0)] as const;
    const q = db
      .insertInto('oidc_payload')
      .values({ model: s[0], id: s[1], payload: s[2], grant_id: s[3], uid: s[4], user_code: s[5], expires_at: s[6] })
      .onConflict((oc) =>
        oc.columns(['model', 'id']).doUpdateSet((eb) => ({
          payload: eb.ref('excluded.payload'),
          grant_id: eb.ref('excluded.grant_id'),
          uid: eb.ref('excluded.uid'),
          user_code: eb.ref('excluded.user_code'),
          expires_at: eb.ref('excluded.expires_at'),
        })),
      )
      .compile();
    return new Statement(q, s);
  });
}

export class KyselyAdapter implements Adapter {
  readonly model: string;
  #db: Db;

  constructor(model: string, db: Db) {
    this.model = model;
    this.#db = db;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    // An expired device code stays findable a while, so oidc-provider (which checks its `exp`)
    // answers expired_token to a late poll, as RFC 8628 §3.5 asks, instead of "not found".
    const keepFor = expiresIn && this.model === 'DeviceCode' ? expiresIn + DEVICE_CODE_EXPIRED_GRACE : expiresIn;
    const expiresAt = keepFor ? new Date(Date.now() + keepFor * 1000) : null;
    let stored: AdapterPayload = payload;
    if (HASHED.has(this.model)) {
      const { jti: _value, ...rest } = payload;
      stored = rest;
    }
    const row = {
      payload: JSON.stringify(stored),
      grant_id: GRANTABLE.has(this.model) || this.model === 'Grant' ? (payload.grantId ?? (this.model === 'Grant' ? id : null)) : null,
      uid: payload.uid ?? null,
      user_code: payload.userCode ?? null,
      expires_at: expiresAt,
    };
    if (this.model === 'ReplayDetection') return this.#insertOnce(id, row);
    const { payload: p, grant_id, uid, user_code, expires_at } = row;
    await this.#db.executeQuery(
      upsertStatement(this.#db).with([this.model, storedId(this.model, id), p, grant_id, uid, user_code, expires_at]),
    );
  }

  // A DPoP proof's or client assertion's jti (src/oidc/dpop.ts). oidc-provider looks it up, then
  // saves it, so two requests with one proof could both pass between the two. Only the insert that
  // finds no live row wins (an expired one is taken over); the others are refused as replays.
  async #insertOnce(id: string, row: { payload: string; expires_at: Date | null }): Promise<void> {
    const res = await this.#db
      .insertInto('oidc_payload')
      .values({ model: this.model, id, payload: row.payload, expires_at: row.expires_at })
      .onConflict((oc) =>
        oc
          .columns(['model', 'id'])
          .doUpdateSet({ payload: row.payload, expires_at: row.expires_at })
          .where('oidc_payload.expires_at', '<=', new Date()),
      )
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) throw new errors.InvalidGrant('replay detected');
  }

  async #findWhere(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    if (typeof value !== 'string' || value.length > 512) return undefined;
    const key = column === 'id' ? storedId(this.model, value) : value;
    const { rows } = await this.#db.executeQuery<{ id: string; payload: unknown; consumed_at: Date | null }>(
      findStatement(this.#db, column).with([this.model, key, new Date()]),
    );
    const row = rows[0];
    if (!row) return undefined;
    let payload = row.payload as AdapterPayload;
    if (HASHED.has(this.model)) payload = { ...payload, jti: column === 'id' ? value : row.id };
    return row.consumed_at ? { ...payload, consumed: Math.floor(new Date(row.consumed_at).getTime() / 1000) } : payload;
  }

  find(id: string) {
    return this.#findWhere('id', id);
  }

  findByUid(uid: string) {
    return this.#findWhere('uid', uid);
  }

  findByUserCode(userCode: string) {
    return this.#findWhere('user_code', userCode);
  }

  // oidc-provider reads `consumed` before it calls consume(), so two requests with one refresh
  // token or code can both see it unused. Only the UPDATE that finds the row unconsumed wins; every
  // other caller is treated as reuse (RFC 9700 §4.14.2, RFC 6749 §4.1.2): the whole grant is
  // revoked, as oidc-provider does when it sees `consumed`, and the request answers invalid_grant.
  async consume(id: string): Promise<void> {
    const key = storedId(this.model, id);
    const res = await this.#db
      .updateTable('oidc_payload')
      .set({ consumed_at: new Date() })
      .where('model', '=', this.model)
      .where('id', '=', key)
      .where('consumed_at', 'is', null)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) return;
    const row = await this.#db
      .selectFrom('oidc_payload')
      .select('grant_id')
      .where('model', '=', this.model)
      .where('id', '=', key)
      .executeTakeFirst();
    if (row?.grant_id) await this.revokeByGrantId(row.grant_id);
    throw new errors.InvalidGrant(`${this.model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
  }

  async destroy(id: string): Promise<void> {
    await this.#db.deleteFrom('oidc_payload').where('model', '=', this.model).where('id', '=', storedId(this.model, id)).execute();
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    // Every model of the grant goes at once: a reused refresh token revokes the whole family.
    await this.#db.deleteFrom('oidc_payload').where('grant_id', '=', grantId).execute();
  }
}

/** Delete expired rows in batches; run in the background on every instance. */
export async function deleteExpiredPayloads(db: Db, batch = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    const res = await db
      .deleteFrom('oidc_payload')
      .where(({ eb, selectFrom }) =>
        eb('id', 'in', selectFrom('oidc_payload').select('id').where('expires_at', '<', new Date()).limit(batch)),
      )
      .where('expires_at', '<', new Date())
      .executeTakeFirst();
    const n = Number(res.numDeletedRows);
    total += n;
    if (n < batch) return total;
  }
}

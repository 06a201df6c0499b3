import { ensureKeys, listKeys, rotateKeys } from '../keys/keys.service.ts';
import { revokeKey } from '../keys/revoke.ts';
import { GatehouseError } from '../errors.ts';
import type { Command } from './command.ts';

export const keyCommands: Command[] = [
  {
    name: 'keys list',
    summary: 'list signing keys and their states',
    options: {},
    async run(ctx) {
      await ensureKeys(ctx.db.kysely, ctx.sealer, ctx.keyPolicy);
      const keys = await listKeys(ctx.db.kysely);
      const text = keys
        .map(
          (k) =>
            `${k.kid}  ${k.alg.padEnd(5)}  ${k.state.padEnd(7)}  created ${k.created_at}${k.published_until ? `  published until ${k.published_until}` : ''}`,
        )
        .join('\n');
      return { json: { keys }, text };
    },
  },
  {
    name: 'keys rotate',
    summary: 'promote the next keys to current now (--force: even if verifiers may not know them yet)',
    options: { force: { type: 'boolean' } },
    async run(ctx, v) {
      const rotated = await ctx.change(
        (trx) => rotateKeys(trx, ctx.sealer, ctx.keyPolicy, { force: !!v.force }),
        (r) => ({ action: 'key.rotate', outcome: 'success', actor: 'cli', target: null, details: { forced: !!v.force, rotated: r } }),
      );
      return {
        json: { ok: true, rotated },
        text: rotated.map((r) => `${r.alg}: current ${r.current} (was ${r.retired}), next ${r.next}`).join('\n'),
      };
    },
  },
  {
    name: 'keys revoke',
    summary: 'withdraw a compromised key now: out of /jwks on every instance, replaced by a fresh key (--all: every key of its algorithm)',
    options: { kid: { type: 'string' }, all: { type: 'boolean' } },
    async run(ctx, v) {
      if (!v.kid) throw new GatehouseError('VALIDATION', '--kid is required (see gatehouse keys list)', { field: 'kid' });
      const r = await ctx.change(
        (trx) => revokeKey(trx, ctx.sealer, ctx.keyPolicy, { kid: v.kid, all: !!v.all }),
        (r) => ({ action: 'key.revoke', outcome: 'success', actor: 'cli', target: v.kid, details: { all: !!v.all, ...r } }),
      );
      return {
        json: { ok: true, ...r },
        text: `${r.alg}: revoked ${r.revoked.join(', ')}; current ${r.current}, next ${r.next}`,
      };
    },
  },
];

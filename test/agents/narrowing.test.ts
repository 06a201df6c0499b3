// The intersection a delegated token carries (src/agents/narrowing.ts), on the grammar of
// src/authz/model.ts: wildcards on both sides, roles along the hierarchy, never wider than either.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allGrants,
  covers,
  intersectGrants,
  intersectRoles,
  isCeilingPermission,
  narrow,
  parseRequestedScope,
  within,
  type Capabilities,
} from '../../src/agents/narrowing.ts';
import { can, isPermission, ROLES } from '../../src/authz/model.ts';

/** can() with an agent ceiling's action wildcard understood. */
const allows = (c: Capabilities, p: string) => allGrants(c).some((g) => covers(g, p));

describe('delegation narrowing', () => {
  it('intersects permission patterns with * as id or action on either side', () => {
    expect(intersectGrants(['agent:*:inject'], ['agent:summarizer:*'])).toEqual(['agent:summarizer:inject']);
    expect(intersectGrants(['agent:summarizer:*'], ['agent:*:inject'])).toEqual(['agent:summarizer:inject']);
    expect(intersectGrants(['thread:*:view'], ['thread:42:view', 'thread:43:view'])).toEqual(['thread:42:view', 'thread:43:view']);
    expect(intersectGrants(['thread:*:view'], ['thread:*:view', 'thread:42:view'])).toEqual(['thread:*:view']);
    expect(intersectGrants(['thread:42:view'], ['thread:43:view'])).toEqual([]);
    expect(intersectGrants(['thread:42:view'], ['thread:42:kill'])).toEqual([]);
    expect(intersectGrants(['config:*:*'], ['agent:*:*'])).toEqual([]);
  });

  it('meets roles along the hierarchy; auditor only when both hold it', () => {
    expect(intersectRoles(['owner'], ['operator'])).toEqual(['operator']);
    expect(intersectRoles(['viewer'], ['admin'])).toEqual(['viewer']);
    expect(intersectRoles(['auditor'], ['owner'])).toEqual([]);
    expect(intersectRoles(['auditor', 'admin'], ['auditor', 'viewer'])).toEqual(['viewer', 'auditor']);
    expect(intersectRoles(['operator'], [])).toEqual([]);
  });

  it('with a request: only what was asked, within both; unknown words are reported', () => {
    const person = { roles: ['operator'], permissions: ['thread:42:view'] };
    const agent = { roles: ['admin'], permissions: ['agent:summarizer:*'] };
    expect(narrow(person, agent)).toEqual({ roles: ['operator'], permissions: [] });
    expect(narrow(person, agent, parseRequestedScope('agent:summarizer:inject'))).toEqual({
      roles: [],
      permissions: ['agent:summarizer:inject'],
    });
    expect(narrow(person, agent, parseRequestedScope('admin'))).toEqual({ roles: ['operator'], permissions: [] });
    expect(parseRequestedScope('viewer thread:1:view all').unknown).toEqual(['all']);
  });

  it('accepts * as the action only in an agent ceiling, never in a token', () => {
    expect(isCeilingPermission('agent:summarizer:*')).toBe(true);
    expect(isPermission('agent:summarizer:*')).toBe(false);
    expect(isCeilingPermission('*:x:view')).toBe(false);
    expect(isCeilingPermission('agent:*')).toBe(false);
  });

  // Property: whatever the three sides hold, the result is within each of them, and every concrete
  // permission it allows is allowed by the person and by the agent.
  const word = fc.constantFrom('agent', 'thread', 'config');
  const id = fc.constantFrom('*', 'a', 'b', '42');
  const action = fc.constantFrom('*', 'view', 'inject', 'kill', 'read');
  const concrete = action.filter((a) => a !== '*');
  const perm = fc.tuple(word, id, concrete).map(([k, i, a]) => `${k}:${i}:${a}`);
  const ceilingPerm = fc.tuple(word, id, action).map(([k, i, a]) => `${k}:${i}:${a}`);
  const caps = fc.record({ roles: fc.subarray([...ROLES], { maxLength: 2 }), permissions: fc.array(perm, { maxLength: 5 }) });
  const ceiling = fc.record({ roles: fc.subarray([...ROLES], { maxLength: 2 }), permissions: fc.array(ceilingPerm, { maxLength: 5 }) });

  it('is never wider than the person, the agent or the request (property)', () => {
    fc.assert(
      fc.property(
        caps,
        ceiling,
        fc.option(caps, { nil: undefined }),
        fc.tuple(word, fc.constantFrom('a', 'b', '42', '7'), concrete),
        (person, agent, req, probe) => {
          const requested = req ? { roles: req.roles, permissions: req.permissions, unknown: [] } : undefined;
          const out = narrow(person, agent, requested);
          expect(out.permissions.every(isPermission)).toBe(true);
          expect(within(out, person)).toBe(true);
          expect(within(out, agent)).toBe(true);
          if (req) expect(within(out, req)).toBe(true);
          const p = probe.join(':');
          if (can(out, p)) {
            expect(can(person, p)).toBe(true);
            expect(allows(agent, p)).toBe(true);
            if (req) expect(can(req, p)).toBe(true);
          }
          // And nothing both hold is lost when nothing narrower was requested.
          if (!req && can(person, p) && allows(agent, p)) expect(can(out, p)).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

// Delegated tokens (RFC 8693 §4.1, docs/architecture.md "Agents and delegation"): a token with an
// `act` claim was issued to an agent acting for the person in `sub`; `act.sub` is the agent acting
// now, earlier actors nest inside it (newest outermost). `can` and `hasRole` need nothing special:
// Gatehouse already narrowed `roles` and `permissions` to what the person, every agent's ceiling
// and each request allowed. What the agentserver adds: who is acting, and refusing delegated
// tokens where only a person may act (verify(token, { allowDelegated: false })).
import { VerifyError } from './errors.ts';

/** RFC 8693 §4.1: the acting party, with the earlier ones nested. */
export interface ActorClaim {
  sub: string;
  act?: ActorClaim;
}

/** Longest `act` chain accepted from a token (Gatehouse allows 10 at most, GATEHOUSE_DELEGATION_MAX_DEPTH). */
export const MAX_ACTOR_CHAIN = 16;

/** Shape-check an `act` claim; undefined when absent. */
export function parseAct(value: unknown): ActorClaim | undefined {
  if (value === undefined) return undefined;
  const copy = (node: unknown, depth: number): ActorClaim => {
    if (depth >= MAX_ACTOR_CHAIN) throw new VerifyError('malformed', `the "act" claim nests more than ${MAX_ACTOR_CHAIN} actors`);
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      throw new VerifyError('malformed', 'the "act" claim must be an object with a "sub"');
    }
    const { sub, act } = node as { sub?: unknown; act?: unknown };
    if (typeof sub !== 'string' || sub === '') throw new VerifyError('malformed', 'the "act" claim must be an object with a "sub"');
    return act === undefined ? { sub } : { sub, act: copy(act, depth + 1) };
  };
  return copy(value, 0);
}

/** Is this token delegated (an agent acting for the person in `sub`)? */
export function isDelegated(claims: { act?: ActorClaim }): boolean {
  return claims.act !== undefined;
}

/** The agent acting now (`act.sub`), or undefined for a person's own token. */
export function actingAgent(claims: { act?: ActorClaim }): string | undefined {
  return claims.act?.sub;
}

/** Every actor, newest first: [the agent acting now, the agent that delegated to it, …]; [] for a person's own token. */
export function actorChain(claims: { act?: ActorClaim }): string[] {
  const chain: string[] = [];
  for (let node = claims.act; node; node = node.act) chain.push(node.sub);
  return chain;
}

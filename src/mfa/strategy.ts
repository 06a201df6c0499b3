// One strategy per second factor, the way Ory Kratos keeps one strategy per method. Each factor
// (TOTP, backup codes, passkeys) implements SecondFactor in its own *.strategy.ts file, on top
// of its primitives (totp.ts, backup-codes.ts, webauthn.ts) and repositories. src/app.ts builds
// them ONCE into a SecondFactors registry (src/mfa/registry.ts) holding their keys (sealer, RP,
// backup-code key), and hands that registry to sign-in, enrollment and self-service.
//
// The interface:
// - id:       the factor's stable name: the registry key and the sign-in page's `?method=`.
// - label:    what pages call it.
// - method:   its name in audit details (`method` of signin.*, `type` of factor.*).
// - amr:      the RFC 8176 values a sign-in with it adds (a passkey reports which one at verify).
// - describe: its line of the one factor-summary query (src/mfa/factors.ts), for pages and for
//             "has this person a second factor at all".
// - remove:   drop one credential (by id) or, without an id, all of this factor's credentials.
// - verify:   only for a typed code (CodeFactor): the sign-in step posted to
//             /interaction/:uid/<path>; a ceremony factor (passkeys) has its own JSON steps.
// Enrollment and confirmation differ per factor (a TOTP seed is confirmed with a code, a passkey
// with a WebAuthn ceremony, backup codes are generated), so each strategy adds its own methods.
//
// Adding a factor: one <name>.strategy.ts implementing SecondFactor (its count goes into the
// summary query), its entry in registry.ts, and its views.
import type { FactorSummary } from './factors.ts';
import type { Db } from '../db/handle.ts';

export type { FactorSummary };

export interface FactorState {
  enrolled: boolean;
  /** Credentials (passkeys) or what is left to use (backup codes); 0 or 1 for TOTP. */
  count: number;
}

export interface SecondFactor {
  readonly id: string;
  readonly label: string;
  readonly method: string;
  readonly amr: readonly string[];
  describe(summary: FactorSummary): FactorState;
  remove(db: Db, accountId: string, credentialId?: string): Promise<number>;
}

export type CodeCheck = { ok: true } | { ok: false; reason: string; message: string };

/** A factor whose sign-in step is a typed code, posted to /interaction/:uid/<path>. */
export interface CodeFactor extends SecondFactor {
  readonly kind: 'code';
  readonly path: string;
  verify(db: Db, accountId: string, code: unknown): Promise<CodeCheck>;
}

export function isCodeFactor(f: SecondFactor): f is CodeFactor {
  return (f as CodeFactor).kind === 'code';
}

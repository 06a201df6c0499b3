// The sign-in steps as a domain flow: password, then a second factor (any strategy of the
// registry, src/mfa/strategy.ts), or a passkey alone; then the level (acr) the sign-in earns.
// The HTTP side (interactions, CSRF, brute-force budget, audit, pages) is src/signin/routes.ts.
import { authenticatePassword, findAccount, recordSignIn } from '../accounts/accounts.service.ts';
import type { SecondFactors } from '../mfa/registry.ts';
import type { CodeCheck, CodeFactor } from '../mfa/strategy.ts';
import type { FactorSummary } from '../mfa/factors.ts';
import { acrFor, requestedAcr, satisfiesAcr } from '../oidc/acr.ts';
import { endFlow, findFlow, startFlow, type LoginFlow } from './login-flow.ts';
import type { Db } from '../db/handle.ts';

/** A failure names the existing account the email belongs to as `target` (audit only; the page says nothing different). */
export type PasswordStep =
  | { ok: true; accountId: string; factors: FactorSummary }
  | { ok: false; reason: 'invalid' | 'disabled' | 'no_second_factor'; actor: string; target: string | null };

export function signInService(db: Db, factors: SecondFactors) {
  return {
    factors,

    /** The password step: on success the interaction waits for the second factor. */
    async password(uid: string, email: string, password: unknown): Promise<PasswordStep> {
      const result = await authenticatePassword(db, email, password);
      if (!result.ok) return { ok: false, reason: result.reason, actor: 'anonymous', target: result.accountId };
      const summary = await factors.summary(db, result.account.id);
      if (!factors.hasAny(summary)) return { ok: false, reason: 'no_second_factor', actor: result.account.id, target: result.account.id };
      await startFlow(db, uid, result.account.id, ['pwd']);
      return { ok: true, accountId: result.account.id, factors: summary };
    },

    /** The password step of this interaction, if it passed and is still fresh, with the account's email. */
    flow(uid: string): Promise<(LoginFlow & { email: string }) | null> {
      return findFlow(db, uid);
    },

    /**
     * What the second-factor page shows: the code factor asked for (if enrolled, else the first
     * enrolled one) and what exists. After a failed code, `retry` names the factor that failed.
     * `known`: the summary this request already read (the password step), not read again.
     */
    async secondFactorPage(accountId: string, requested?: string, retry?: CodeFactor, known?: FactorSummary) {
      const summary = known ?? (await factors.summary(db, accountId));
      if (retry) return { method: retry.id, summary };
      const wanted = factors.codeFactors.find((f) => f.id === requested);
      const firstEnrolled = factors.codeFactors.find((f) => f.describe(summary).enrolled) ?? factors.codeFactors.at(-1)!;
      const method = wanted && wanted.describe(summary).enrolled ? wanted : firstEnrolled;
      return { method: method.id, summary };
    },

    verifyCode(factor: CodeFactor, accountId: string, code: unknown): Promise<CodeCheck> {
      return factor.verify(db, accountId, code);
    },

    passkeyOptions(uid: string, accountId: string | null) {
      return factors.passkeys.authenticationOptions(db, `signin:${uid}`, accountId);
    },

    /** A passkey answer: as the second factor of `flow`'s account, or usernameless without one. */
    async passkey(uid: string, flow: LoginFlow | null, response: unknown) {
      const signedIn = await factors.passkeys.authenticate(db, `signin:${uid}`, response);
      if (flow && signedIn.accountId !== flow.accountId) throw new Error('passkey of another account');
      const account = await findAccount(db, signedIn.accountId);
      return { accountId: signedIn.accountId, email: account?.email ?? '', active: account?.status === 'active', amr: signedIn.amr };
    },

    /** The acr these methods earn, or null when acr_values asked for more (src/oidc/acr.ts). */
    level(amr: readonly string[], acrValues: unknown): string | null {
      const acr = acrFor(amr);
      return satisfiesAcr(requestedAcr(acrValues), acr) ? acr : null;
    },

    /** The sign-in is done: note it on the account and forget the interaction's password step. */
    async finish(uid: string, accountId: string): Promise<void> {
      await Promise.all([recordSignIn(db, accountId), endFlow(db, uid)]);
    },
  };
}

export type SignInService = ReturnType<typeof signInService>;

// Enrollment from an invitation link: /enroll/:token. The choices made along the way live in an
// `enrollment` row; the account is created only by the last step, in one transaction with the
// invitation's single use, the factor and the backup codes, so nothing is left half-made.
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import { getAccount, newAccountId } from '../accounts/accounts.service.ts';
import { normalizeEmail } from '../accounts/email.ts';
import { FIRST_OWNER_EMAIL, INVITATION_INVALID_MESSAGE, consumeInvitation, enrollAccount, findValidInvitation, type Invitation } from '../accounts/invitations.ts';
import { checkNewPassword, hashPassword } from '../accounts/password.ts';
import { inTransaction, updateAccount } from '../accounts/accounts.repository.ts';
import type { AuditSink } from '../audit/sink.ts';
import type { Sealer } from '../crypto/seal.ts';
import type { Database } from '../db/schema.ts';
import { GatehouseError, isGatehouseError } from '../errors.ts';
import type { Csrf } from '../http/csrf.ts';
import { regenerateBackupCodes } from '../mfa/backup-codes.ts';
import { adoptTotpSeed, checkCodeForSeed, describeTotpSeed, newTotpSeed } from '../mfa/totp.ts';
import { checkRegistration, registrationOptions, saveCredential, type RelyingParty } from '../mfa/webauthn.ts';
import { backupCodesPage, enrollFactorPage, enrollPasswordPage, invitationInvalidPage } from '../../views/enroll.ts';

export interface EnrollDeps {
  db: Kysely<Database>;
  csrf: Csrf;
  sealer: Sealer;
  rp: RelyingParty;
  backupCodeKey: Buffer;
  audit: AuditSink;
  /** Where a person goes once enrolled. */
  afterEnrollment: string;
}

const ENROLLMENT_TTL_SECONDS = 3600;

/**
 * The last step of a factor reset: use the invitation up and keep the account, with the new
 * password if the person chose one (a passkey-only person may add one here).
 */
async function resetAccount(trx: Kysely<Database>, token: string, passwordHash: string | null) {
  const inv = await consumeInvitation(trx, token);
  if (inv.purpose !== 'reset' || !inv.account_id) throw new GatehouseError('VALIDATION', 'This link does not reset an account.');
  if (passwordHash) await updateAccount(trx, inv.account_id, { password_hash: passwordHash, password_changed_at: new Date() });
  return getAccount(trx, inv.account_id);
}

export function enrollRoutes(router: Router, deps: EnrollDeps): void {
  const { db } = deps;
  const seedContext = (invitationId: string) => `enrollment_totp:${invitationId}`;

  async function invitation(ctx: Context): Promise<Invitation | null> {
    ctx.set('cache-control', 'no-store');
    const inv = await findValidInvitation(db, ctx.params.token);
    if (!inv || (inv.purpose === 'reset' && !inv.account_id)) {
      ctx.status = 410;
      ctx.type = 'html';
      ctx.body = invitationInvalidPage(INVITATION_INVALID_MESSAGE);
      return null;
    }
    return inv;
  }

  const enrollment = (invitationId: string) => db.selectFrom('enrollment').selectAll().where('invitation_id', '=', invitationId).where('expires_at', '>', new Date()).executeTakeFirst();

  /** A reset keeps the account (and its password, if it has one); only the factors are new. */
  const accountHasPassword = async (inv: Invitation) =>
    inv.purpose === 'reset' && inv.account_id ? !!(await db.selectFrom('account').select('password_hash').where('id', '=', inv.account_id).executeTakeFirst())?.password_hash : false;

  async function saveEnrollment(inv: Invitation, changes: { email?: string; password_hash?: string | null; totp_seed_sealed?: string | null }) {
    const existing = await enrollment(inv.id);
    const row = {
      account_id: existing?.account_id ?? inv.account_id ?? newAccountId(),
      email: changes.email ?? existing?.email ?? inv.email,
      password_hash: changes.password_hash !== undefined ? changes.password_hash : (existing?.password_hash ?? null),
      totp_seed_sealed: changes.totp_seed_sealed !== undefined ? changes.totp_seed_sealed : (existing?.totp_seed_sealed ?? null),
      expires_at: new Date(Date.now() + ENROLLMENT_TTL_SECONDS * 1000),
    };
    await db.insertInto('enrollment').values({ invitation_id: inv.id, ...row }).onConflict((oc) => oc.column('invitation_id').doUpdateSet(row)).execute();
    return row;
  }

  const ctxFor = (ctx: Context) => ({ nonce: ctx.state.cspNonce as string, csrf: deps.csrf.token(ctx), token: ctx.params.token as string });

  function html(ctx: Context, body: string, status = 200) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = body;
  }

  function passwordPage(ctx: Context, inv: Invitation, extra: { error?: string; email?: string } = {}, status = 200) {
    html(ctx, enrollPasswordPage({ ...ctxFor(ctx), email: extra.email ?? inv.email, askEmail: inv.email === FIRST_OWNER_EMAIL, role: inv.role, ...(extra.error ? { error: extra.error } : {}) }), status);
  }

  async function factorPage(ctx: Context, inv: Invitation, error?: string, status = 200) {
    const row = (await enrollment(inv.id)) ?? ((await accountHasPassword(inv)) ? await saveEnrollment(inv, {}) : undefined);
    if (!row || (row.password_hash === null && inv.email === FIRST_OWNER_EMAIL)) return passwordPage(ctx, inv);
    // Keep the seed across reloads: the person may already have scanned it.
    let seed: Buffer;
    if (row.totp_seed_sealed) seed = deps.sealer.open(row.totp_seed_sealed, seedContext(inv.id));
    else {
      seed = (await newTotpSeed(row.email)).seed;
      await saveEnrollment(inv, { totp_seed_sealed: deps.sealer.seal(seed, seedContext(inv.id)) });
    }
    const shown = await describeTotpSeed(seed, row.email);
    html(ctx, enrollFactorPage({ ...ctxFor(ctx), ...shown, ...(error ? { error } : {}) }), status);
  }

  /** The last step: account, factor and backup codes in one transaction with the invitation's use. */
  async function complete(ctx: Context, inv: Invitation, addFactor: (trx: Kysely<Database>, accountId: string) => Promise<string>) {
    const row = await enrollment(inv.id);
    if (!row) throw new GatehouseError('VALIDATION', 'This enrollment has expired. Open the invitation link again.');
    const { account, codes, factor } = await inTransaction(db, async (trx) => {
      const account = inv.purpose === 'reset' ? await resetAccount(trx, ctx.params.token, row.password_hash) : await enrollAccount(trx, ctx.params.token, { passwordHash: row.password_hash, email: row.email, accountId: row.account_id });
      const factor = await addFactor(trx, account.id);
      const codes = await regenerateBackupCodes(trx, deps.backupCodeKey, account.id);
      await trx.deleteFrom('enrollment').where('invitation_id', '=', inv.id).execute();
      return { account, codes, factor };
    });
    const base = { outcome: 'success' as const, actor: account.id, ip: ctx.ip, target: account.id, requestId: ctx.state.requestId };
    await deps.audit({ ...base, action: 'invitation.accept', details: { invitation_id: inv.id, role: account.role, purpose: inv.purpose } });
    await deps.audit({ ...base, action: 'factor.enroll', details: { factor, with_password: row.password_hash !== null, backup_set_size: codes.length } });
    return codes;
  }

  router.get('/enroll/:token', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    if (await accountHasPassword(inv)) {
      // A factor reset for a person who keeps their password: straight to the new factor.
      ctx.status = 303;
      return ctx.redirect(`/enroll/${ctx.params.token}/factor`);
    }
    const row = await enrollment(inv.id);
    passwordPage(ctx, inv, { email: row?.email ?? inv.email });
  });

  router.post('/enroll/:token/password', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    deps.csrf.verify(ctx, body._csrf);
    let email = inv.email;
    try {
      if (inv.email === FIRST_OWNER_EMAIL) email = normalizeEmail(body.email);
      checkNewPassword(body.password, [email]);
    } catch (err) {
      if (!isGatehouseError(err)) throw err;
      return passwordPage(ctx, inv, { error: err.message, email: typeof body.email === 'string' ? body.email.slice(0, 254) : inv.email }, 400);
    }
    if (inv.email === FIRST_OWNER_EMAIL && (await db.selectFrom('account').select('id').where('email', '=', email).executeTakeFirst())) {
      return passwordPage(ctx, inv, { error: `An account for ${email} already exists.`, email }, 409);
    }
    await saveEnrollment(inv, { email, password_hash: await hashPassword(body.password as string) });
    ctx.status = 303;
    ctx.redirect(`/enroll/${ctx.params.token}/factor`);
  });

  router.get('/enroll/:token/factor', async (ctx) => {
    const inv = await invitation(ctx);
    if (inv) await factorPage(ctx, inv);
  });

  router.post('/enroll/:token/totp', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    deps.csrf.verify(ctx, body._csrf);
    const row = await enrollment(inv.id);
    if (!row?.totp_seed_sealed || (row.password_hash === null && !(await accountHasPassword(inv)))) return factorPage(ctx, inv, 'Start again: set a password first.', 400);
    const seed = deps.sealer.open(row.totp_seed_sealed, seedContext(inv.id));
    const step = await checkCodeForSeed(seed, body.code);
    if (step === null) return factorPage(ctx, inv, 'That code is not right. Check the time on your device and enter the code your app shows now.', 400);
    const codes = await complete(ctx, inv, async (trx, accountId) => {
      await adoptTotpSeed(trx, deps.sealer, accountId, seed, step);
      return 'totp';
    });
    html(ctx, backupCodesPage({ nonce: ctx.state.cspNonce, codes, next: deps.afterEnrollment }));
  });

  router.post('/enroll/:token/passkey/options', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    deps.csrf.verify(ctx, ctx.get('x-csrf-token'));
    if (inv.email === FIRST_OWNER_EMAIL && !(await enrollment(inv.id))) {
      throw new GatehouseError('VALIDATION', 'Enter your email and a password first.');
    }
    // A passkey with no password step yet: the person enrolls with the passkey alone.
    const row = (await enrollment(inv.id)) ?? (await saveEnrollment(inv, { password_hash: null }));
    ctx.body = await registrationOptions(db, deps.rp, `enroll:${inv.id}`, { id: row.account_id, email: row.email });
  });

  router.post('/enroll/:token/passkey/verify', async (ctx) => {
    const inv = await invitation(ctx);
    if (!inv) return;
    deps.csrf.verify(ctx, ctx.get('x-csrf-token'));
    const body = (ctx.request.body ?? {}) as { response?: unknown; name?: unknown };
    const name = typeof body.name === 'string' ? body.name.trim() : 'Passkey';
    const row = await enrollment(inv.id);
    if (!row) throw new GatehouseError('VALIDATION', 'This enrollment has expired. Open the invitation link again.');
    // Checked (and its challenge spent) before the transaction that creates the account.
    const credential = await checkRegistration(db, deps.rp, `enroll:${inv.id}`, row.account_id, body.response);
    const codes = await complete(ctx, inv, async (trx, accountId) => {
      await saveCredential(trx, accountId, credential, name);
      return 'passkey';
    });
    ctx.body = { codes, next: deps.afterEnrollment };
  });
}

// Passkeys (WebAuthn) with @simplewebauthn/server. Following its example app and docs/architecture.md ("Accounts and sign-in"):
// challenges are stored server-side, tagged by ceremony and scope, single-use (taken out of the
// table before they are checked) and expiring; origin and RP ID are always checked; user
// verification is required; the signature counter is updated after each sign-in.
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { GatehouseError } from '../errors.ts';
import * as repo from './webauthn.repository.ts';
import type { Db } from '../db/handle.ts';

/** A ceremony left unanswered this long is void (the browser's own timeout is shorter). */
export const CHALLENGE_TTL_SECONDS = 300;
const MAX_PASSKEYS = 20;

export interface RelyingParty {
  id: string; // the issuer's host name
  name: string;
  origin: string; // the issuer's origin
}

export function relyingPartyFor(issuer: string): RelyingParty {
  const url = new URL(issuer);
  return { id: url.hostname, name: 'Gatehouse', origin: url.origin };
}

type Ceremony = repo.Ceremony;

async function storeChallenge(db: Db, scope: string, ceremony: Ceremony, challenge: string, accountId: string | null): Promise<void> {
  await repo.storeChallenge(db, scope, {
    ceremony,
    challenge,
    account_id: accountId,
    expires_at: new Date(Date.now() + CHALLENGE_TTL_SECONDS * 1000),
  });
}

/** Take the challenge out (single use, whatever the outcome) and return it if still valid. */
async function takeChallenge(db: Db, scope: string, ceremony: Ceremony): Promise<{ challenge: string; accountId: string | null } | null> {
  const row = await repo.takeChallenge(db, scope, ceremony);
  if (!row || new Date(row.expires_at) <= new Date()) return null;
  return { challenge: row.challenge, accountId: row.account_id };
}

export async function registrationOptions(
  db: Db,
  rp: RelyingParty,
  scope: string,
  account: { id: string; email: string },
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const existing = await repo.passkeyDescriptors(db, account.id);
  if (existing.length >= MAX_PASSKEYS) throw new GatehouseError('CONFLICT', `At most ${MAX_PASSKEYS} passkeys per person.`);
  const options = await generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: account.email,
    userDisplayName: account.email,
    userID: new TextEncoder().encode(account.id),
    attestationType: 'none',
    excludeCredentials: existing.map((c) => ({ id: c.id, transports: c.transports as any })),
    // A discoverable credential with user verification: a passkey that signs in on its own.
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    timeout: 120_000,
  });
  await storeChallenge(db, scope, 'registration', options.challenge, account.id);
  return options;
}

export interface VerifiedCredential {
  id: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  deviceType: string;
  backedUp: boolean;
}

/** Check a registration answer; its challenge is used up whatever the outcome. */
export async function checkRegistration(
  db: Db,
  rp: RelyingParty,
  scope: string,
  accountId: string,
  response: unknown,
): Promise<VerifiedCredential> {
  const stored = await takeChallenge(db, scope, 'registration');
  if (!stored || stored.accountId !== accountId) throw new GatehouseError('VALIDATION', 'This passkey request has expired. Try again.');
  let result;
  try {
    result = await verifyRegistrationResponse({
      response: response as RegistrationResponseJSON,
      expectedChallenge: stored.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      requireUserVerification: true,
    });
  } catch {
    throw new GatehouseError('VALIDATION', 'The passkey could not be verified. Try again.');
  }
  if (!result.verified || !result.registrationInfo) throw new GatehouseError('VALIDATION', 'The passkey could not be verified. Try again.');
  const { credential, credentialDeviceType, credentialBackedUp } = result.registrationInfo;
  return {
    id: credential.id,
    publicKey: credential.publicKey,
    counter: credential.counter,
    transports: credential.transports ?? [],
    deviceType: credentialDeviceType,
    backedUp: credentialBackedUp,
  };
}

export async function saveCredential(db: Db, accountId: string, credential: VerifiedCredential, name: string): Promise<void> {
  if (await repo.passkeyExists(db, credential.id)) throw new GatehouseError('CONFLICT', 'This passkey is already registered.');
  await repo.insertPasskey(db, {
    id: credential.id,
    account_id: accountId,
    public_key: Buffer.from(credential.publicKey).toString('base64url'),
    counter: credential.counter,
    transports: JSON.stringify(credential.transports),
    device_type: credential.deviceType,
    backed_up: credential.backedUp,
    name: name.slice(0, 100) || 'Passkey',
  });
}

export async function verifyRegistration(
  db: Db,
  rp: RelyingParty,
  scope: string,
  accountId: string,
  response: unknown,
  name: string,
): Promise<{ id: string }> {
  const credential = await checkRegistration(db, rp, scope, accountId, response);
  await saveCredential(db, accountId, credential, name);
  return { id: credential.id };
}

/** Options for a sign-in: for one account (second factor), or for anyone (usernameless). */
export async function authenticationOptions(
  db: Db,
  rp: RelyingParty,
  scope: string,
  accountId: string | null,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const allow = accountId ? await repo.passkeyDescriptors(db, accountId) : [];
  const options = await generateAuthenticationOptions({
    rpID: rp.id,
    userVerification: 'required',
    allowCredentials: allow.map((c) => ({ id: c.id, transports: c.transports as any })),
    timeout: 120_000,
  });
  await storeChallenge(db, scope, 'authentication', options.challenge, accountId);
  return options;
}

export interface PasskeySignIn {
  accountId: string;
  credentialId: string;
  /** RFC 8176: a key in a single device's hardware is `hwk`, a synced passkey `swk`. */
  amr: string[];
}

export async function verifyAuthentication(db: Db, rp: RelyingParty, scope: string, response: unknown): Promise<PasskeySignIn> {
  const fail = () => new GatehouseError('UNAUTHENTICATED', 'The passkey could not be verified.');
  const stored = await takeChallenge(db, scope, 'authentication');
  if (!stored) throw new GatehouseError('VALIDATION', 'This passkey request has expired. Try again.');
  const id = (response as { id?: unknown })?.id;
  if (typeof id !== 'string' || id.length > 1024) throw fail();
  const cred = await repo.findPasskey(db, id);
  // A second factor must be a passkey of the person who gave the password.
  if (!cred || (stored.accountId !== null && cred.account_id !== stored.accountId)) throw fail();
  const userHandle = (response as AuthenticationResponseJSON).response?.userHandle;
  if (userHandle && Buffer.from(userHandle, 'base64url').toString('utf8') !== cred.account_id) throw fail();
  let result;
  try {
    result = await verifyAuthenticationResponse({
      response: response as AuthenticationResponseJSON,
      expectedChallenge: stored.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      credential: {
        id: cred.id,
        publicKey: new Uint8Array(Buffer.from(cred.public_key, 'base64url')),
        counter: Number(cred.counter),
        transports: cred.transports as any,
      },
      requireUserVerification: true,
    });
  } catch {
    throw fail();
  }
  if (!result.verified) throw fail();
  await repo.recordPasskeyUse(db, cred.id, result.authenticationInfo.newCounter);
  const kind = result.authenticationInfo.credentialDeviceType === 'multiDevice' ? 'swk' : 'hwk';
  return { accountId: cred.account_id, credentialId: cred.id, amr: [kind, 'user'] };
}

export function listPasskeys(db: Db, accountId: string) {
  return repo.listPasskeys(db, accountId);
}

export function removePasskey(db: Db, accountId: string, id: string): Promise<boolean> {
  return repo.deletePasskey(db, accountId, id);
}

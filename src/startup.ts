// What the server does once it listens: on an empty database, print the one-time link that
// enrolls the first owner (docs/architecture.md, "Accounts and sign-in").
import type { Gatehouse } from './app.ts';
import { firstOwnerInvitation } from './accounts/invitations.ts';

export async function onServerStarted(g: Gatehouse, out: NodeJS.WritableStream = process.stdout): Promise<string | null> {
  const invitation = await firstOwnerInvitation(g.db.kysely);
  if (!invitation) return null;
  const url = `${g.config.issuer}/enroll/${invitation.token}`;
  // On the console only, never in the structured log: the link is a credential.
  out.write(
    `\nNo owner yet. Open this link to enroll the first owner (valid until ${invitation.expires_at.toISOString()}, single use):\n\n  ${url}\n\n` +
      'A restart before it is used prints a new link and voids this one.\n\n',
  );
  return url;
}

import {
  createClient,
  deleteClient,
  listClients,
  rotateClientSecret,
  DEFAULT_SECRET_OVERLAP_SECONDS,
  type AuthMethod,
} from '../clients/clients.service.ts';
import { GatehouseError } from '../errors.ts';
import type { Command } from './command.ts';
import fs from 'node:fs';

function readJwks(file: string | undefined): unknown {
  if (!file) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new GatehouseError('VALIDATION', `--jwks-file: cannot read a JSON Web Key Set from ${file} (${(err as Error).message})`);
  }
}

// The whole contract of `clients create`, as the README's "Clients" section explains it.
const CREATE_HELP = `Options:
  --name NAME                      shown on the sign-in page ("to continue to NAME") and in the audit log (required)
  --grant GRANT                    repeatable: client_credentials (a service), or authorization_code
                                   [+ refresh_token] (a browser application), or device_code
                                   [+ refresh_token] (a command line, RFC 8628; usually with --public);
                                   never a service and an application at once;
                                   token_exchange (with client_credentials): may exchange a person's
                                   access token for an agent's delegated token (RFC 8693)
  --auth METHOD                    how the client authenticates at /token, introspection and revocation:
                                     client_secret_basic  secret in the Authorization header (default)
                                     client_secret_post   secret in the form body (libraries that default to it)
                                     private_key_jwt      a JWT signed with the client's own key (--jwks-file)
                                     tls_client_auth      a TLS client certificate (--tls-subject-dn)
                                   A secret is printed once; Gatehouse keeps only its hash.
  --public                         a public application (no secret; PKCE for browsers): same as --auth none
  --jwks-file FILE                 the client's public keys (a JWKS), for private_key_jwt
  --tls-subject-dn DN              the certificate subject, exactly, for tls_client_auth
  --role ROLE                      repeatable, services only: viewer, operator, admin, owner, auditor
  --permission KIND:ID:ACTION      repeatable, services only: e.g. agent:summarizer:inject, or audit:append
  --allow-cidr CIDR                repeatable, services only: networks the client may authenticate from
                                   (/token, introspection, revocation)
  --rate-limit N                   token requests a minute at /token (default 600); over it: 429 + Retry-After
  --redirect-uri URL               repeatable, browser applications: exact-match callback (https, http on localhost)
  --post-logout-redirect-uri URL   repeatable, browser applications: where /session/end may send the
                                   person after signing out (RP-Initiated Logout 1.0, exact match)
  --backchannel-logout-uri URL     applications: where Gatehouse POSTs a signed logout token when a
                                   person's session with this client ends (Back-Channel Logout 1.0);
                                   private and loopback addresses are allowed
  --introspect                     a resource server: may introspect tokens issued to other clients
                                   (without it a client sees active:true only for its own tokens)
  --require-dpop                   every access token must be DPoP-bound (RFC 9449): token requests
                                   without a DPoP proof are refused
  --certificate-bound              tls_client_auth only: access tokens carry cnf.x5t#S256 (RFC 8705)
  --json                           print {"client_id", "client_secret"?} as JSON`;

export const clientCommands: Command[] = [
  {
    name: 'clients create',
    summary: 'create a service client or a browser application',
    help: CREATE_HELP,
    options: {
      name: { type: 'string' },
      grant: { type: 'string', multiple: true },
      role: { type: 'string', multiple: true },
      permission: { type: 'string', multiple: true },
      auth: { type: 'string' },
      'allow-cidr': { type: 'string', multiple: true },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      'backchannel-logout-uri': { type: 'string' },
      public: { type: 'boolean' },
      'jwks-file': { type: 'string' },
      'tls-subject-dn': { type: 'string' },
      'rate-limit': { type: 'string' },
      introspect: { type: 'boolean' },
      'require-dpop': { type: 'boolean' },
      'certificate-bound': { type: 'boolean' },
    },
    async run(ctx, v) {
      if (v.public && v.auth) throw new GatehouseError('VALIDATION', '--public and --auth exclude each other');
      const rateLimit = v['rate-limit'] === undefined ? undefined : Number(v['rate-limit']);
      if (rateLimit !== undefined && (!/^\d+$/.test(v['rate-limit']!) || !Number.isSafeInteger(rateLimit)))
        throw new GatehouseError('VALIDATION', '--rate-limit must be a whole number of token requests a minute');
      const created = await ctx.change(
        (trx) =>
          createClient(trx, {
            name: v.name ?? '',
            grants: v.grant ?? [],
            auth: (v.public ? 'none' : v.auth) as AuthMethod | undefined,
            roles: v.role,
            permissions: v.permission,
            allowedCidrs: v['allow-cidr'],
            redirectUris: v['redirect-uri'],
            postLogoutRedirectUris: v['post-logout-redirect-uri'],
            backchannelLogoutUri: v['backchannel-logout-uri'],
            jwks: readJwks(v['jwks-file']) as any,
            tlsSubjectDn: v['tls-subject-dn'],
            rateLimit,
            introspect: v.introspect === true,
            requireDpop: v['require-dpop'] === true,
            certificateBound: v['certificate-bound'] === true,
          }),
        (c) => ({
          action: 'client.create',
          outcome: 'success',
          actor: 'cli',
          target: c.client_id,
          details: {
            name: v.name,
            grants: v.grant ?? [],
            roles: v.role ?? [],
            permissions: v.permission ?? [],
            allowed_cidrs: v['allow-cidr'] ?? [],
            ...(rateLimit !== undefined ? { rate_limit: rateLimit } : {}),
            introspect: v.introspect === true,
            ...(v['require-dpop'] ? { require_dpop: true } : {}),
            ...(v['certificate-bound'] ? { certificate_bound: true } : {}),
            ...(v['backchannel-logout-uri'] ? { backchannel_logout_uri: v['backchannel-logout-uri'] } : {}),
          },
        }),
      );
      const text = created.client_secret
        ? `client_id:     ${created.client_id}\nclient_secret: ${created.client_secret}\nThe secret is shown once; Gatehouse keeps only its hash.`
        : `client_id: ${created.client_id}`;
      return { json: created, text };
    },
  },
  {
    name: 'clients list',
    summary: 'list clients',
    options: {},
    async run(ctx) {
      const clients = await listClients(ctx.db.kysely);
      const text = clients.length
        ? clients
            .map(
              (c) =>
                `${c.client_id}  ${c.kind.padEnd(7)}  ${c.name}  roles=${c.roles.join(',') || '-'}  auth=${c.auth}  limit=${c.rate_limit}/min${c.require_dpop ? '  dpop' : ''}${c.certificate_bound ? '  cert-bound' : ''}${c.allowed_cidrs.length ? '  networks=' + c.allowed_cidrs.join(',') : ''}`,
            )
            .join('\n')
        : 'no clients';
      return { json: { clients }, text };
    },
  },
  {
    name: 'clients rotate-secret',
    summary: 'issue a new client secret (the old one works for --overlap seconds)',
    options: { 'client-id': { type: 'string' }, overlap: { type: 'string' } },
    async run(ctx, v) {
      if (!v['client-id']) throw new GatehouseError('VALIDATION', '--client-id is required');
      const overlap = v.overlap === undefined ? DEFAULT_SECRET_OVERLAP_SECONDS : Number(v.overlap);
      if (!Number.isInteger(overlap) || overlap < 0 || overlap > 30 * 86400)
        throw new GatehouseError('VALIDATION', '--overlap must be a whole number of seconds from 0 to 2592000');
      const r = await ctx.change(
        (trx) => rotateClientSecret(trx, v['client-id'], overlap),
        (rotated) => ({
          action: 'client.secret_rotate',
          outcome: 'success',
          actor: 'cli',
          target: rotated.client_id,
          details: { overlap_seconds: overlap },
        }),
      );
      return {
        json: r,
        text: `client_id:     ${r.client_id}\nclient_secret: ${r.client_secret}\n${r.previous_secret_valid_until ? `The previous secret works until ${r.previous_secret_valid_until}.` : 'The previous secret no longer works.'}`,
      };
    },
  },
  {
    name: 'clients delete',
    summary: 'delete a client and revoke its grants',
    options: { 'client-id': { type: 'string' } },
    async run(ctx, v) {
      if (!v['client-id']) throw new GatehouseError('VALIDATION', '--client-id is required');
      await ctx.change(
        (trx) => deleteClient(trx, v['client-id']),
        () => ({ action: 'client.delete', outcome: 'success', actor: 'cli', target: v['client-id'], details: {} }),
      );
      return { json: { ok: true, client_id: v['client-id'] }, text: `deleted ${v['client-id']}` };
    },
  },
];

// tls_client_auth (RFC 8705 §2.1) trusts whatever CA chain the TLS listener accepts. Without
// GATEHOUSE_TLS_CA_FILE, Node would verify client certificates against its bundled public roots,
// and anyone able to buy a certificate with a matching subject DN from any public CA would
// authenticate as the client. Gatehouse refuses to start in that configuration.
import type { Config } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import { findTlsClientAuthClient } from '../clients/clients.repository.ts';
import type { Db } from '../db/handle.ts';

export async function assertClientCertificateTrust(config: Config, db: Db): Promise<void> {
  if (!config.tls || config.tls.caFile) return;
  const clientId = await findTlsClientAuthClient(db);
  if (clientId) {
    throw new ConfigError(
      `GATEHOUSE_TLS_CA_FILE: client ${clientId} uses tls_client_auth, which needs the CA that issues client certificates; ` +
        'without it client certificates would be checked against public roots. Set GATEHOUSE_TLS_CA_FILE or change the client.',
    );
  }
}

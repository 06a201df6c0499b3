// A throwaway PKI for TLS tests (openssl, P-256, one day): a CA Gatehouse trusts, a server
// certificate for localhost, client certificates issued by that CA, and a "rogue" one from a CA
// nobody trusts.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestPki {
  dir: string;
  /** Path of a file in the PKI directory, e.g. file('svc.crt'). */
  file(name: string): string;
  read(name: string): Buffer;
  remove(): void;
}

/**
 * Makes ca.crt, server.crt/key (localhost, 127.0.0.1), one `<who>.crt/key` per client name with
 * subject `/O=Gatehouse Test/CN=<who>.internal`, and rogue.crt/key: self-signed, subject of `svc`.
 */
export function createTestPki(clients: string[] = ['svc', 'other']): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-pki-'));
  const file = (n: string) => path.join(dir, n);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=Gatehouse Test CA');
  const issue = (who: string, subject: string, ext?: string) => {
    openssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', subject);
    openssl(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${who}.crt`,
      '-days',
      '1',
      ...(ext ? ['-extfile', ext] : []),
    );
  };
  fs.writeFileSync(file('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  issue('server', '/CN=localhost', 'server.ext');
  for (const who of clients) issue(who, `/O=Gatehouse Test/CN=${who}.internal`);
  // A certificate from a CA Gatehouse does not trust, with the subject of `svc`.
  openssl('req', '-x509', ...ec, '-keyout', 'rogue.key', '-out', 'rogue.crt', '-days', '1', '-subj', '/O=Gatehouse Test/CN=svc.internal');
  return {
    dir,
    file,
    read: (n) => fs.readFileSync(file(n)),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

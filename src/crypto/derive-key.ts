// Every key Gatehouse derives from the master key (cookie signing, CSRF, backup-code HMAC): one
// HKDF-SHA256 (RFC 5869) with no salt and a label per use, so keys for different uses are
// independent and every instance with the same master key derives the same ones.
import crypto from 'node:crypto';

/** 32 bytes for `label`. Changing a label or these parameters changes every key derived with it. */
export function deriveKey(masterKey: Buffer, label: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), label, 32));
}

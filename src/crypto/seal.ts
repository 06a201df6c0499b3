// AES-256-GCM under the master key. The context (for example "signing_key:<kid>") is bound as
// additional data, so a sealed value copied into another row or column does not open there.
import crypto from 'node:crypto';
import { SealError } from '../errors.ts';

const VERSION = 'v1';

export interface Sealer {
  seal(plaintext: string | Buffer, context: string): string;
  open(sealed: string, context: string): Buffer;
}

export function createSealer(masterKey: Buffer): Sealer {
  if (masterKey.length !== 32) throw new SealError('master key must be 32 bytes');
  const key = Buffer.from(masterKey);
  return {
    seal(plaintext, context) {
      const iv = crypto.randomBytes(12);
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return `${VERSION}.${iv.toString('base64url')}.${ct.toString('base64url')}`;
    },
    open(sealed, context) {
      const [version, ivText, ctText] = sealed.split('.');
      if (version !== VERSION || !ivText || !ctText) throw new SealError('sealed value has an unknown format');
      const iv = Buffer.from(ivText, 'base64url');
      const data = Buffer.from(ctText, 'base64url');
      if (iv.length !== 12 || data.length < 16) throw new SealError('sealed value is truncated');
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(data.subarray(data.length - 16));
      try {
        return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]);
      } catch {
        // Wrong master key, or the value was altered or moved: never return garbage.
        throw new SealError(`cannot open sealed value for ${context}: wrong master key or altered data`);
      }
    },
  };
}

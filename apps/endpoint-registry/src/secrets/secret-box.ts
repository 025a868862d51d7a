// Endpoint secrets at rest: AES-256-GCM, a random 96-bit IV per encryption, associated data
// binding the ciphertext to its workspace and endpoint (a copied ciphertext fails elsewhere),
// and the key id recorded so keys can rotate (see `npm run rekey`).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** Bytes as stored: a Buffer when written, a BSON Binary when read back with lean(). */
export type StoredBytes = Uint8Array | { buffer: Uint8Array };
const bytes = (b: StoredBytes): Buffer => Buffer.from(b instanceof Uint8Array ? b : b.buffer);

export interface SealedSecret {
  kid: string;
  iv: StoredBytes;
  ct: StoredBytes;
  tag: StoredBytes;
}

export class SecretBox {
  constructor(
    private readonly keys: ReadonlyMap<string, Buffer>,
    readonly activeKeyId: string,
  ) {
    if (!keys.has(activeKeyId)) throw new Error(`active key ${activeKeyId} is not in the key ring`);
  }

  seal(plain: string, aad: string): SealedSecret {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.activeKeyId)!, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return { kid: this.activeKeyId, iv, ct, tag: cipher.getAuthTag() };
  }

  /** Throws when the key id is unknown or the ciphertext, tag or associated data do not match. */
  open(sealed: SealedSecret, aad: string): string {
    const key = this.keys.get(sealed.kid);
    if (!key) throw new Error(`secret encrypted with unknown key id ${sealed.kid}`);
    const decipher = createDecipheriv('aes-256-gcm', key, bytes(sealed.iv));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(bytes(sealed.tag));
    return Buffer.concat([decipher.update(bytes(sealed.ct)), decipher.final()]).toString('utf8');
  }
}

/** Associated data for one endpoint's secrets. */
export const secretAad = (workspaceId: string, endpointId: string): string => `hookline/endpoint-secret/v1/${workspaceId}/${endpointId}`;

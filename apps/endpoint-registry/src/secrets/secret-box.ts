// Endpoint secrets at rest: AES-256-GCM, a random 96-bit IV per encryption, associated data
// binding the ciphertext to its workspace and endpoint (a copied ciphertext fails elsewhere),
// and the key id recorded so keys can rotate (see `npm run rekey`).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** GCM's standard 96-bit IV and full 128-bit tag; anything else stored is refused, never trusted. */
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Bytes as stored: a Buffer when written, a BSON Binary when read back with lean(). */
export type StoredBytes = Uint8Array | { buffer: Uint8Array; position?: number };
// A BSON Binary's buffer may be longer than its content; `position` is the content's length.
const bytes = (b: StoredBytes): Buffer =>
  b instanceof Uint8Array ? Buffer.from(b) : Buffer.from(b.position === undefined ? b.buffer : b.buffer.subarray(0, b.position));

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
    for (const [id, key] of keys) if (key.length !== 32) throw new Error(`key ${id} must be 32 bytes (AES-256), got ${key.length}`);
  }

  /** True when `sealed` must be re-encrypted to be under the active key (see rekey.ts). */
  needsRekey(sealed: Pick<SealedSecret, 'kid'>): boolean {
    return sealed.kid !== this.activeKeyId;
  }

  /** Decrypts with whichever key sealed it and encrypts again under the active key, with a new IV. */
  reseal(sealed: SealedSecret, aad: string): SealedSecret {
    return this.seal(this.open(sealed, aad), aad);
  }

  seal(plain: string, aad: string): SealedSecret {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.activeKeyId)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return { kid: this.activeKeyId, iv, ct, tag: cipher.getAuthTag() };
  }

  /** Throws when the key id is unknown or the ciphertext, tag or associated data do not match. */
  open(sealed: SealedSecret, aad: string): string {
    const key = this.keys.get(sealed.kid);
    if (!key) throw new Error(`secret encrypted with unknown key id ${sealed.kid}`);
    const iv = bytes(sealed.iv);
    const tag = bytes(sealed.tag);
    // Without these checks GCM would accept a truncated tag (down to 4 bytes), which makes forgery
    // feasible for whoever can write the collection.
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new Error(`sealed secret has a ${iv.length}-byte IV and a ${tag.length}-byte tag; expected ${IV_BYTES} and ${TAG_BYTES}`);
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(bytes(sealed.ct)), decipher.final()]).toString('utf8');
  }
}

/** Associated data for one endpoint's secrets. */
export const secretAad = (workspaceId: string, endpointId: string): string => `hookline/endpoint-secret/v1/${workspaceId}/${endpointId}`;

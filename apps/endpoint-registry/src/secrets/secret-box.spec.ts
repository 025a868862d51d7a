import { randomBytes } from 'node:crypto';
import { secretAad, SecretBox, type SealedSecret } from './secret-box';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const aad = secretAad('ws_1', 'ep_1');
const SECRET = 'whsec_' + randomBytes(32).toString('base64');
const buf = (b: SealedSecret['ct']): Buffer => Buffer.from(b as Uint8Array);

describe('SecretBox', () => {
  const box = new SecretBox(new Map([['k1', k1]]), 'k1');

  it('round-trips and records the key id, a 12-byte IV and a 16-byte tag', () => {
    const sealed = box.seal(SECRET, aad);
    expect(sealed.kid).toBe('k1');
    expect(buf(sealed.iv)).toHaveLength(12);
    expect(buf(sealed.tag)).toHaveLength(16);
    expect(buf(sealed.ct).includes(Buffer.from(SECRET))).toBe(false);
    expect(box.open(sealed, aad)).toBe(SECRET);
  });

  it('uses a fresh IV for every encryption of the same secret', () => {
    const ivs = new Set<string>();
    const cts = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const s = box.seal(SECRET, aad);
      ivs.add(buf(s.iv).toString('hex'));
      cts.add(buf(s.ct).toString('hex'));
    }
    expect(ivs.size).toBe(50);
    expect(cts.size).toBe(50);
  });

  it('refuses other associated data (workspace or endpoint)', () => {
    const sealed = box.seal(SECRET, aad);
    expect(() => box.open(sealed, secretAad('ws_2', 'ep_1'))).toThrow();
    expect(() => box.open(sealed, secretAad('ws_1', 'ep_2'))).toThrow();
  });

  it.each(['ct', 'tag', 'iv'] as const)('refuses a flipped %s byte', (part) => {
    const sealed = box.seal(SECRET, aad);
    for (const index of [0, buf(sealed[part]).length - 1]) {
      const bad = Buffer.from(buf(sealed[part]));
      bad[index]! ^= 0x01;
      expect(() => box.open({ ...sealed, [part]: bad }, aad)).toThrow();
    }
  });

  it('refuses truncated tags and odd IV lengths instead of trusting them', () => {
    const sealed = box.seal(SECRET, aad);
    expect(() => box.open({ ...sealed, tag: buf(sealed.tag).subarray(0, 12) }, aad)).toThrow(/16/);
    expect(() => box.open({ ...sealed, tag: buf(sealed.tag).subarray(0, 4) }, aad)).toThrow(/16/);
    expect(() => box.open({ ...sealed, iv: Buffer.concat([buf(sealed.iv), Buffer.alloc(4)]) }, aad)).toThrow(/12/);
  });

  it('reads BSON Binary-shaped bytes ({ buffer, position }) as stored by the driver', () => {
    const sealed = box.seal(SECRET, aad);
    const asBinary = (b: SealedSecret['ct']) => ({ buffer: Buffer.concat([buf(b), Buffer.alloc(8)]), position: buf(b).length });
    expect(box.open({ kid: 'k1', iv: asBinary(sealed.iv), ct: asBinary(sealed.ct), tag: asBinary(sealed.tag) }, aad)).toBe(SECRET);
  });

  it('names an unknown key id', () => {
    const other = new SecretBox(new Map([['k2', k2]]), 'k2');
    expect(() => other.open(box.seal(SECRET, aad), aad)).toThrow(/unknown key id k1/);
  });

  it('decrypts with any ring key, encrypts with the active one, and reseals old ones', () => {
    const old = box.seal(SECRET, aad);
    const ring = new SecretBox(new Map([['k1', k1], ['k2', k2]]), 'k2');
    expect(ring.open(old, aad)).toBe(SECRET);
    expect(ring.needsRekey(old)).toBe(true);
    const moved = ring.reseal(old, aad);
    expect(moved.kid).toBe('k2');
    expect(ring.needsRekey(moved)).toBe(false);
    expect(new SecretBox(new Map([['k2', k2]]), 'k2').open(moved, aad)).toBe(SECRET);
    expect(() => box.open(moved, aad)).toThrow(/unknown key id k2/);
  });

  it('refuses an active key outside the ring and keys that are not 32 bytes', () => {
    expect(() => new SecretBox(new Map([['k1', k1]]), 'k9')).toThrow(/k9/);
    expect(() => new SecretBox(new Map([['k1', randomBytes(16)]]), 'k1')).toThrow(/32 bytes/);
  });
});

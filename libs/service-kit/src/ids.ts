// Time-ordered ids (UUIDv7 layout: 48-bit ms timestamp, then random), hex without dashes and
// with a type prefix, e.g. `evt_0193c1...`. Sorting ids sorts by creation time.
import { randomBytes } from 'node:crypto';

let lastMs = 0;
let seq = 0;

export function timeOrderedId(prefix: string, now = Date.now()): string {
  // Within one millisecond a 12-bit counter keeps ids from one process strictly increasing.
  if (now <= lastMs) {
    seq = (seq + 1) & 0xfff;
    if (seq === 0) lastMs += 1;
    now = lastMs;
  } else {
    lastMs = now;
    seq = randomBytes(2).readUInt16BE() & 0x3ff;
  }
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (seq >> 8);
  bytes[7] = seq & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  return `${prefix}_${bytes.toString('hex')}`;
}

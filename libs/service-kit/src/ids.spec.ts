import { timeOrderedId } from './ids';

describe('timeOrderedId', () => {
  it('has the UUIDv7 layout behind its prefix: timestamp, version 7, variant 10', () => {
    const at = Date.UTC(2026, 11, 6, 12, 0, 0) + 60_000_000; // later than any id made before in this process
    const id = timeOrderedId('att', at);
    expect(id).toMatch(/^att_[0-9a-f]{32}$/);
    const hex = id.slice(4);
    expect(parseInt(hex.slice(0, 12), 16)).toBe(at);
    expect(hex[12]).toBe('7');
    expect(['8', '9', 'a', 'b']).toContain(hex[16]);
  });

  it('is strictly increasing within a millisecond and across them', () => {
    const ids = Array.from({ length: 5_000 }, () => timeOrderedId('evt'));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('draws fresh random bytes for every id, across refills of its pool', () => {
    // The last 14 hex digits are random only: 600 ids use the 4 KiB pool more than twice over.
    const tails = Array.from({ length: 600 }, () => timeOrderedId('x').slice(-14));
    expect(new Set(tails).size).toBe(tails.length);
  });
});

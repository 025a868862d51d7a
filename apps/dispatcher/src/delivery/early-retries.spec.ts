import { EarlyRetries, KNOWN_AFTER_DUE_MS } from './early-retries';

const t = (dueAt: number) => ({ dueAt });
type T = ReturnType<typeof t>;

describe('EarlyRetries', () => {
  it("hands back an endpoint's retries still far from due, oldest first, as copies running", () => {
    const r = new EarlyRetries<T>(10);
    r.remember('a', 'd1', 2, t(5_000));
    r.remember('a', 'd2', 2, t(1_500));
    r.remember('a', 'd3', 3, t(60_000));
    r.remember('b', 'd4', 2, t(60_000));
    expect(r.size).toBe(4);
    // d2 is due within the lead (1,500 <= 1,000 + 1,000): its tier brings it about as soon.
    expect(r.take('a', 1_000, 1_000).map((x) => x.deliveryId)).toEqual(['d1', 'd3']);
    expect(r.take('a', 1_000, 1_000)).toEqual([]);
    expect(r.size).toBe(1);
    expect(r.known('d2', 2)).toBe('not copied');
    expect(r.known('d1', 2)).toBe('running');
    expect(r.known('d4', 2)).toBe('not copied');
  });

  it('tells a due tier record what became of its copy, once, and only for the attempt it remembered', () => {
    const r = new EarlyRetries<T>(10);
    for (const d of ['d1', 'd2', 'd3']) r.remember('a', d, 2, t(60_000));
    r.take('a', 0, 0);
    r.carried('d1', 2);
    r.carried('d2', 1); // another attempt's copy: not this one
    r.abandoned('d3', 2);
    expect(r.known('d1', 1)).toBeUndefined();
    expect(r.known('d1', 2)).toBe('carried');
    expect(r.known('d1', 2)).toBeUndefined();
    expect(r.known('d2', 2)).toBe('running');
    expect(r.known('d3', 2)).toBe('not copied');
    expect(r.known('d9', 2)).toBeUndefined();
  });

  it('lets a copy start only while its tier record is unmet and not about due', () => {
    const r = new EarlyRetries<T>(10);
    for (const d of ['d1', 'd2', 'd3']) r.remember('a', d, 2, t(10_000));
    r.take('a', 0, 0);
    expect(r.stillEarly('d1', 2, 0, 5_000)).toBe(true);
    expect(r.stillEarly('d1', 3, 0, 5_000)).toBe(false);
    // Too near: given up, and its tier record is attempted without asking.
    expect(r.stillEarly('d2', 2, 6_000, 5_000)).toBe(false);
    expect(r.known('d2', 2)).toBe('not copied');
    // Its tier record was met meanwhile.
    expect(r.known('d3', 2)).toBe('running');
    expect(r.stillEarly('d3', 2, 0, 5_000)).toBe(false);
  });

  it('puts back a copy that could not start, and a later retry of a delivery replaces the earlier one', () => {
    const r = new EarlyRetries<T>(10);
    r.remember('a', 'd1', 2, t(60_000));
    r.take('a', 0, 0);
    r.putBack('d1', 2, t(60_000));
    expect(r.size).toBe(1);
    r.remember('a', 'd1', 3, t(90_000));
    expect(r.size).toBe(1);
    expect(r.take('a', 0, 0)).toEqual([{ deliveryId: 'd1', task: t(90_000) }]);
  });

  it('holds no more payload bytes than it may, and lets go of a payload once its copy is taken', () => {
    const r = new EarlyRetries<T>(10, 1_000);
    expect(r.remember('a', 'd1', 1, t(60_000), 600)).toBe(true);
    expect(r.remember('a', 'd2', 1, t(60_000), 600)).toBe(false);
    expect(r.bytes).toBe(600);
    r.take('a', 0, 0);
    expect(r.bytes).toBe(0);
    expect(r.remember('a', 'd2', 1, t(60_000), 600)).toBe(true);
    // No room to put d1 back: its tier record is attempted when due.
    r.putBack('d1', 1, t(60_000), 600);
    expect(r.known('d1', 1)).toBe('not copied');
    r.forget('a');
    expect(r.bytes).toBe(0);
    expect(r.size).toBe(0);
  });

  it('counts only waiting retries against its capacity, and forgets the oldest fates first', () => {
    const r = new EarlyRetries<T>(2);
    expect(r.remember('a', 'd1', 1, t(60_000))).toBe(true);
    expect(r.remember('b', 'd2', 1, t(60_000))).toBe(true);
    expect(r.remember('a', 'd3', 1, t(60_000))).toBe(false);
    r.take('a', 0, 0);
    r.carried('d1', 1);
    // d1's fate stays known, and no longer takes a waiting place.
    for (let i = 0; i < 25; i++) {
      r.remember('c', `e${i}`, 1, t(60_000));
      r.take('c', 0, 0);
    }
    expect(r.size).toBe(1);
    // 2 x 10 fates at most: the oldest (d1's) was forgotten.
    expect(r.known('d1', 1)).toBeUndefined();
    expect(r.known('e24', 1)).toBe('running');
  });

  it('forgets what is long past due and what belongs to a deleted endpoint', () => {
    const r = new EarlyRetries<T>(10);
    r.remember('a', 'd1', 1, t(100));
    r.remember('a', 'd2', 1, t(100 + KNOWN_AFTER_DUE_MS));
    r.remember('c', 'd3', 1, t(900));
    r.sweep(101 + KNOWN_AFTER_DUE_MS);
    expect(r.known('d1', 1)).toBeUndefined();
    r.forget('c');
    expect(r.known('d3', 1)).toBeUndefined();
    expect(r.size).toBe(1);
    expect(r.take('a', 0, 0).map((x) => x.deliveryId)).toEqual(['d2']);
  });
});

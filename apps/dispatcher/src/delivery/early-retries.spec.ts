import { EarlyRetries, KNOWN_AFTER_DUE_MS } from './early-retries';

const t = (dueAt: number) => ({ dueAt });

describe('EarlyRetries', () => {
  it("hands back an endpoint's retries still far from due, oldest first, as copies running", () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(10);
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
  });

  it('tells a due tier record what became of its copy, once, and only for the attempt it remembered', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(10);
    r.remember('a', 'd1', 2, t(60_000));
    r.remember('a', 'd2', 2, t(60_000));
    r.remember('a', 'd3', 2, t(60_000));
    r.take('a', 0, 0);
    r.copyEnded('d1', true);
    r.copyEnded('d2', false);
    expect(r.known('d1', 1)).toBeUndefined();
    expect(r.known('d1', 2)).toBe('delivered');
    expect(r.known('d1', 2)).toBeUndefined();
    expect(r.known('d2', 2)).toBe('not delivered');
    expect(r.known('d3', 2)).toBe('running');
    expect(r.known('d9', 2)).toBeUndefined();
  });

  it('puts back a copy that could not start, and a later retry of a delivery replaces the earlier one', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(10);
    r.remember('a', 'd1', 2, t(60_000));
    r.take('a', 0, 0);
    r.putBack('d1', t(60_000));
    expect(r.size).toBe(1);
    r.remember('a', 'd1', 3, t(90_000));
    expect(r.size).toBe(1);
    expect(r.take('a', 0, 0)).toEqual([{ deliveryId: 'd1', task: t(90_000) }]);
  });

  it('holds no more payload bytes than it may, and lets go of a payload once its copy is taken', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(10, 1_000);
    expect(r.remember('a', 'd1', 1, t(60_000), 600)).toBe(true);
    expect(r.remember('a', 'd2', 1, t(60_000), 600)).toBe(false);
    expect(r.bytes).toBe(600);
    r.take('a', 0, 0);
    expect(r.bytes).toBe(0);
    expect(r.remember('a', 'd2', 1, t(60_000), 600)).toBe(true);
    r.forget('a');
    expect(r.bytes).toBe(0);
    expect(r.known('d1', 1)).toBe('running');
  });

  it('remembers no more than its capacity', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(2);
    expect(r.remember('a', 'd1', 1, t(10))).toBe(true);
    expect(r.remember('b', 'd2', 1, t(10))).toBe(true);
    expect(r.remember('a', 'd3', 1, t(10))).toBe(false);
    expect(r.remember('a', 'd1', 2, t(10))).toBe(true);
    expect(r.size).toBe(2);
  });

  it('forgets what is long past due and what belongs to a deleted endpoint', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(10);
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

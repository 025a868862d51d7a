import { EarlyRetries } from './early-retries';

const t = (dueAt: number, id = String(dueAt)) => ({ dueAt, id });

describe('EarlyRetries', () => {
  it('hands back an endpoint\'s retries still far from due, oldest first, and forgets them all', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(10);
    r.remember('a', t(5_000));
    r.remember('a', t(1_500));
    r.remember('a', t(60_000));
    r.remember('b', t(60_000, 'b'));
    expect(r.size).toBe(4);
    // Due within the lead (1,500 <= 1,000 + 1,000): its tier brings it about as soon.
    expect(r.take('a', 1_000, 1_000).map((x) => x.dueAt)).toEqual([5_000, 60_000]);
    expect(r.take('a', 1_000, 1_000)).toEqual([]);
    expect(r.size).toBe(1);
  });

  it('remembers no more than its capacity', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(2);
    expect(r.remember('a', t(10))).toBe(true);
    expect(r.remember('b', t(10))).toBe(true);
    expect(r.remember('a', t(10))).toBe(false);
    expect(r.size).toBe(2);
  });

  it('forgets what came due and what belongs to a deleted endpoint', () => {
    const r = new EarlyRetries<ReturnType<typeof t>>(10);
    r.remember('a', t(100));
    r.remember('a', t(300));
    r.remember('b', t(200));
    r.remember('c', t(900));
    r.sweep(200);
    expect(r.size).toBe(2);
    expect(r.take('b', 0, 0)).toEqual([]);
    r.forget('c');
    expect(r.size).toBe(1);
    expect(r.take('a', 0, 0).map((x) => x.dueAt)).toEqual([300]);
    expect(r.size).toBe(0);
  });
});

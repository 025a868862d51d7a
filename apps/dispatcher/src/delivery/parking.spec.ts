import { Parking, type Parkable } from './parking';

const job = (endpointKey: string, n: number, source = 'webhooks.retry.5s.v1/0'): Parkable => ({ endpointKey, key: `evt_${n}|${endpointKey}#1`, source });

describe('Parking', () => {
  it('parks each attempt once, up to its capacity', () => {
    const p = new Parking(2);
    expect(p.park(job('a', 1), 0)).toBe(true);
    expect(p.park(job('a', 1), 0)).toBe(false);
    expect(p.park(job('b', 2), 0)).toBe(true);
    expect(p.park(job('b', 3), 0)).toBe(false);
    expect(p.size).toBe(2);
    expect(p.has(job('a', 1).key)).toBe(true);
    expect(p.endpoints().sort()).toEqual(['a', 'b']);
  });

  it('hands an endpoint its tasks oldest first, and forgets the endpoint once empty', () => {
    const p = new Parking(10);
    p.park(job('a', 1), 0);
    p.park(job('a', 2), 1);
    expect(p.takeOne('a')?.key).toBe(job('a', 1).key);
    expect(p.has(job('a', 1).key)).toBe(false);
    expect(p.takeOne('a')?.key).toBe(job('a', 2).key);
    expect(p.takeOne('a')).toBeUndefined();
    expect(p.hasEndpoint('a')).toBe(false);
    expect(p.size).toBe(0);
  });

  it('gives back what was parked too long, and only that', () => {
    const p = new Parking(10);
    p.park(job('a', 1), 0);
    p.park(job('b', 2), 500);
    p.park(job('a', 3), 1_000);
    expect(p.takeOlderThan(600, 1_200).map((j) => j.key).sort()).toEqual([job('a', 1).key, job('b', 2).key].sort());
    expect(p.size).toBe(1);
    expect(p.endpoints()).toEqual(['a']);
    // Room again for what was given back.
    expect(p.park(job('a', 1), 1_300)).toBe(true);
  });

  it('gives back the tasks of partitions this replica no longer owns', () => {
    const p = new Parking(10);
    p.park(job('a', 1, 't/0'), 0);
    p.park(job('a', 2, 't/1'), 0);
    p.park(job('b', 3, 't/2'), 0);
    expect(p.takeNotIn(new Set(['t/1'])).map((j) => j.key).sort()).toEqual([job('a', 1).key, job('b', 3).key].sort());
    expect(p.takeAll().map((j) => j.key)).toEqual([job('a', 2).key]);
    expect(p.size).toBe(0);
  });

  it('keeps order and every task through many takes (the line compacts as it goes)', () => {
    const p = new Parking(5_000);
    for (let i = 0; i < 3_000; i++) p.park(job('a', i), i);
    const taken: string[] = [];
    for (let i = 0; i < 2_500; i++) taken.push(p.takeOne('a')!.key);
    expect(taken[0]).toBe(job('a', 0).key);
    expect(taken[2_499]).toBe(job('a', 2_499).key);
    expect(p.size).toBe(500);
    expect(p.takeOlderThan(10, 2_600).map((j) => j.key)).toEqual(Array.from({ length: 90 }, (_, i) => job('a', 2_500 + i).key));
    expect(p.takeOne('a')!.key).toBe(job('a', 2_590).key);
    expect(p.takeAll()).toHaveLength(409);
    expect(p.hasEndpoint('a')).toBe(false);
  });
});

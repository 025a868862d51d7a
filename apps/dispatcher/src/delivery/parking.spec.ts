import { Parking, type Parkable } from './parking';

const job = (endpointKey: string, n: number, source = 'webhooks.retry.5s.v1/0', attemptsMade = 1): Parkable & { key: string } => ({
  endpointKey,
  deliveryId: `evt_${n}|${endpointKey}`,
  key: `evt_${n}|${endpointKey}#${attemptsMade}`,
  task: { attemptsMade },
  source,
  bytes: 1_000,
});

type J = ReturnType<typeof job>;

describe('Parking', () => {
  it('parks each attempt once, up to its capacity', () => {
    const p = new Parking<J>(2);
    expect(p.park(job('a', 1), 0)).toEqual({ parked: true });
    expect(p.park(job('a', 1), 0)).toEqual({ parked: false, why: 'covered' });
    expect(p.park(job('b', 2), 0)).toEqual({ parked: true });
    expect(p.park(job('b', 3), 0)).toEqual({ parked: false, why: 'full' });
    expect(p.size).toBe(2);
    expect(p.covers(job('a', 1))).toBe(true);
    expect(p.endpoints().sort()).toEqual(['a', 'b']);
  });

  it('parks no more payload bytes than it may hold, and counts what leaves', () => {
    const p = new Parking<J>(100, 2_500);
    expect(p.park(job('a', 1), 0)).toEqual({ parked: true });
    expect(p.park(job('a', 2), 0)).toEqual({ parked: true });
    expect(p.park({ ...job('a', 3), bytes: 600 }, 0)).toEqual({ parked: false, why: 'full' });
    expect(p.bytes).toBe(2_000);
    // A later attempt of a parked delivery takes its place, with its own size.
    expect(p.park({ ...job('a', 2, undefined, 2), bytes: 1_200 }, 0)).toMatchObject({ parked: true });
    expect(p.bytes).toBe(2_200);
    p.takeOne('a');
    expect(p.bytes).toBe(1_200);
    p.takeAll();
    expect(p.bytes).toBe(0);
  });

  it('hands an endpoint its tasks oldest first, and forgets the endpoint once empty', () => {
    const p = new Parking<J>(10);
    p.park(job('a', 1), 0);
    p.park(job('a', 2), 1);
    expect(p.takeOne('a')?.key).toBe(job('a', 1).key);
    expect(p.covers(job('a', 1))).toBe(false);
    expect(p.takeOne('a')?.key).toBe(job('a', 2).key);
    expect(p.takeOne('a')).toBeUndefined();
    expect(p.hasEndpoint('a')).toBe(false);
    expect(p.size).toBe(0);
  });

  it('gives back what was parked too long, and only that', () => {
    const p = new Parking<J>(10);
    p.park(job('a', 1), 0);
    p.park(job('b', 2), 500);
    p.park(job('a', 3), 1_000);
    expect(p.takeOlderThan(600, 1_200).map((j) => j.key).sort()).toEqual([job('a', 1).key, job('b', 2).key].sort());
    expect(p.size).toBe(1);
    expect(p.endpoints()).toEqual(['a']);
    // Room again for what was given back.
    expect(p.park(job('a', 1), 1_300)).toEqual({ parked: true });
  });

  it('gives back the tasks of partitions this replica no longer owns', () => {
    const p = new Parking<J>(10);
    p.park(job('a', 1, 't/0'), 0);
    p.park(job('a', 2, 't/1'), 0);
    p.park(job('b', 3, 't/2'), 0);
    expect(p.takeNotIn(new Set(['t/1'])).map((j) => j.key).sort()).toEqual([job('a', 1).key, job('b', 3).key].sort());
    expect(p.takeAll().map((j) => j.key)).toEqual([job('a', 2).key]);
    expect(p.size).toBe(0);
  });

  it('keeps order and every task through many takes (the line compacts as it goes)', () => {
    const p = new Parking<J>(5_000);
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

  it('holds one task per delivery, its latest attempt, in the place and age of the first', () => {
    const p = new Parking<J>(10);
    p.park(job('a', 1, 't/0', 3), 0);
    p.park(job('a', 2), 10);
    // An earlier attempt (a record read again) is covered; a later one takes the place.
    expect(p.covers(job('a', 1, 't/0', 2))).toBe(true);
    expect(p.covers(job('a', 1, 't/0', 4))).toBe(false);
    expect(p.park(job('a', 1, 't/0', 2), 20)).toEqual({ parked: false, why: 'covered' });
    const r = p.park(job('a', 1, 't/0', 5), 30);
    expect(r.parked && r.superseded?.task.attemptsMade).toBe(3);
    expect(p.size).toBe(2);
    expect(p.takeOlderThan(5, 6).map((j) => j.task.attemptsMade)).toEqual([5]);
    expect(p.takeOne('a')?.deliveryId).toBe(job('a', 2).deliveryId);
    expect(p.size).toBe(0);
  });
});

import { OffsetTracker } from './offset-tracker';

describe('OffsetTracker', () => {
  it('commits one past the longest run of settled records from the front', () => {
    const t = new OffsetTracker();
    const a = t.register('events', 0, '10');
    const b = t.register('events', 0, '11');
    const c = t.register('events', 0, '12');
    a.hold();
    b.hold();
    b.hold();
    c.hold();
    expect(t.due()).toEqual([]);
    b.release();
    b.release();
    c.release();
    // 10 still unsettled: nothing behind it may be committed.
    expect(t.due()).toEqual([]);
    a.release();
    expect(t.due()).toEqual([{ topic: 'events', partition: 0, offset: '13' }]);
  });

  it('a record without deliveries is settled at once; a committed point is not due again', () => {
    const t = new OffsetTracker();
    t.register('events', 3, '0');
    const [p] = t.due();
    expect(p).toEqual({ topic: 'events', partition: 3, offset: '1' });
    t.committed(p!);
    expect(t.due()).toEqual([]);
    const next = t.register('events', 3, '5');
    next.hold();
    expect(t.due()).toEqual([]);
    next.release();
    expect(t.due()).toEqual([{ topic: 'events', partition: 3, offset: '6' }]);
  });

  it('partitions are independent', () => {
    const t = new OffsetTracker();
    t.register('events', 0, '1').hold();
    t.register('events', 1, '7');
    expect(t.due()).toEqual([{ topic: 'events', partition: 1, offset: '8' }]);
    expect(t.unsettled).toBe(1);
  });

  it('release is counted per hold, and extra releases are ignored', () => {
    const t = new OffsetTracker();
    const r = t.register('events', 0, '0');
    r.hold();
    r.hold();
    r.release();
    r.release();
    r.release();
    const s = t.register('events', 0, '1');
    s.hold();
    expect(t.unsettled).toBe(1);
    expect(t.due()).toEqual([{ topic: 'events', partition: 0, offset: '1' }]);
  });

  it('knows records it registered (fetched again after a rebalance) and refuses to register them twice', () => {
    const t = new OffsetTracker();
    t.register('events', 0, '4');
    expect(t.seen('events', 0, '3')).toBe(true);
    expect(t.seen('events', 0, '4')).toBe(true);
    expect(t.seen('events', 0, '5')).toBe(false);
    expect(t.seen('events', 1, '0')).toBe(false);
    expect(() => t.register('events', 0, '4')).toThrow(/registered twice/);
  });

  it('forgets partitions it no longer owns', () => {
    const t = new OffsetTracker();
    t.register('events', 0, '1');
    t.register('events', 1, '1').hold();
    t.retain({ events: [1] });
    expect(t.seen('events', 0, '1')).toBe(false);
    expect(t.due()).toEqual([]);
    expect(t.unsettled).toBe(1);
    t.retain({});
    expect(t.unsettled).toBe(0);
  });

  it('remembers when each partition came to this replica, across rebalances that leave it here', () => {
    const t = new OffsetTracker();
    expect(t.assignedAt('retry', 0)).toBeUndefined();
    t.retain({ retry: [0, 1] }, 1_000);
    t.retain({ retry: [1, 2] }, 5_000);
    expect(t.assignedAt('retry', 0)).toBeUndefined();
    expect(t.assignedAt('retry', 1)).toBe(1_000);
    expect(t.assignedAt('retry', 2)).toBe(5_000);
    t.retain({ retry: [0, 1, 2] }, 9_000);
    expect(t.assignedAt('retry', 0)).toBe(9_000);
  });
});

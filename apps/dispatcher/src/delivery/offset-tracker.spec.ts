import { decodeSettled, encodeSettled, MAX_METADATA_CHARS, MAX_WALK, OffsetTracker, RECOMMIT_MS } from './offset-tracker';

describe('OffsetTracker', () => {
  it('commits one past the longest run of settled records from the front, and the records settled past it as metadata', () => {
    const t = new OffsetTracker();
    const a = t.register('events', 0, '10');
    const b = t.register('events', 0, '11');
    const c = t.register('events', 0, '12');
    a.hold();
    b.hold();
    b.hold();
    c.hold();
    // Where reading started (committed already, or the start of the log): nothing settled yet.
    const [start] = t.due();
    expect(start).toEqual({ topic: 'events', partition: 0, offset: '10', metadata: null });
    t.committed(start!);
    expect(t.due()).toEqual([]);
    b.release();
    b.release();
    c.release();
    // 10 still unsettled: nothing behind it may be committed, but 11 and 12 are settled.
    const [past] = t.due();
    expect(past).toEqual({ topic: 'events', partition: 0, offset: '10', metadata: 's1:1.2' });
    expect(decodeSettled(10n, past!.metadata)).toEqual([[11n, 13n]]);
    t.committed(past!);
    expect(t.due()).toEqual([]);
    a.release();
    expect(t.due()).toEqual([{ topic: 'events', partition: 0, offset: '13', metadata: null }]);
  });

  it('a record without deliveries is settled at once; a committed point is not due again', () => {
    const t = new OffsetTracker();
    t.register('events', 3, '0');
    const [p] = t.due();
    expect(p).toEqual({ topic: 'events', partition: 3, offset: '1', metadata: null });
    t.committed(p!);
    expect(t.due()).toEqual([]);
    const next = t.register('events', 3, '5');
    next.hold();
    expect(t.due()).toEqual([]);
    next.release();
    expect(t.due()).toEqual([{ topic: 'events', partition: 3, offset: '6', metadata: null }]);
  });

  it('partitions are independent', () => {
    const t = new OffsetTracker();
    t.register('events', 0, '1').hold();
    t.register('events', 1, '7');
    expect(t.due()).toEqual([
      { topic: 'events', partition: 0, offset: '1', metadata: null },
      { topic: 'events', partition: 1, offset: '8', metadata: null },
    ]);
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
    expect(t.due()).toEqual([{ topic: 'events', partition: 0, offset: '1', metadata: null }]);
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
    expect(t.due()).toEqual([{ topic: 'events', partition: 1, offset: '1', metadata: null }]);
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

  it('encodes settled records as ranges of consecutive offsets, split at gaps, within the metadata limit', () => {
    const open = [
      { offset: 5n, unsettled: 1 },
      { offset: 6n, unsettled: 0 },
      { offset: 7n, unsettled: 0 },
      { offset: 9n, unsettled: 0 }, // 8 is no record (a gap): its own range
      { offset: 10n, unsettled: 2 },
      { offset: 11n, unsettled: 0 },
    ];
    const meta = encodeSettled(5n, open);
    expect(meta).toBe('s1:1.2,1.1,1.1');
    expect(decodeSettled(5n, meta)).toEqual([
      [6n, 8n],
      [9n, 10n],
      [11n, 12n],
    ]);
    expect(encodeSettled(5n, [{ offset: 5n, unsettled: 1 }])).toBeNull();
    // Every other record settled: as many ranges as fit, the rest left to be attempted again.
    const many = Array.from({ length: 10_000 }, (_, i) => ({ offset: BigInt(1_000_000 + i), unsettled: i % 2 }));
    const long = encodeSettled(1_000_000n, many)!;
    expect(long.length).toBeLessThanOrEqual(MAX_METADATA_CHARS);
    const ranges = decodeSettled(1_000_000n, long);
    expect(ranges.length).toBeGreaterThan(400);
    expect(ranges.every(([s, e]) => e - s === 1n && s % 2n === 0n)).toBe(true);
  });

  it('ignores metadata it did not write', () => {
    for (const m of [null, '', 'some consumer note', 's1:', 's1:1', 's1:1.0', 's1:-1.2', 's2:1.2']) expect(decodeSettled(0n, m)).toEqual([]);
  });

  it('a partition new here takes the records its previous owner settled as settled, once their commit is read', async () => {
    const t = new OffsetTracker();
    expect(t.retain({ retry: [0, 1] })).toEqual([
      { topic: 'retry', partition: 0 },
      { topic: 'retry', partition: 1 },
    ]);
    let answer!: (m: Map<string, { offset: string; metadata: string | null }>) => void;
    t.inherit([{ topic: 'retry', partition: 0 }, { topic: 'retry', partition: 1 }], new Promise((r) => (answer = r)));
    const pending = t.settledElsewhere('retry', 0);
    expect(pending).toBeInstanceOf(Promise);
    answer(new Map([['retry/0', { offset: '100', metadata: 's1:2.3' }]]));
    const settled = await pending;
    expect(['100', '101', '102', '103', '104', '105'].map(settled)).toEqual([false, false, true, true, true, false]);
    expect((await t.settledElsewhere('retry', 1))('0')).toBe(false);
    // Kept while the partition stays; forgotten once it goes, and read again when it comes back.
    expect(t.retain({ retry: [0] })).toEqual([]);
    expect((await t.settledElsewhere('retry', 0))('103')).toBe(true);
    t.retain({});
    expect((await t.settledElsewhere('retry', 0))('103')).toBe(false);
  });

  it('a commit that cannot be read leaves every record to be taken', async () => {
    const t = new OffsetTracker();
    t.inherit(t.retain({ events: [0] }), Promise.reject(new Error('broker down')));
    expect((await t.settledElsewhere('events', 0))('5')).toBe(false);
  });

  it('claims what it inherited past the records it took in its own commits, and commits nothing while that is read', async () => {
    const t = new OffsetTracker();
    let answer!: (m: Map<string, { offset: string; metadata: string | null }>) => void;
    t.inherit(t.retain({ retry: [0] }), new Promise((r) => (answer = r)));
    t.register('retry', 0, '100').hold();
    // Reading the previous owner's commit: committing now would overwrite its claims.
    expect(t.due()).toEqual([]);
    // It settled 102-104 and 200-209 past 100.
    answer(new Map([['retry/0', { offset: '100', metadata: 's1:2.3,2n.a' }]]));
    const settled = await t.settledElsewhere('retry', 0);
    expect(settled('103')).toBe(true);
    t.register('retry', 0, '101').hold();
    t.register('retry', 0, '102'); // settled elsewhere: registered without a hold
    const [point] = t.due();
    // 102 taken here, 103-104 and 200-209 not reached yet: all still claimed.
    expect(decodeSettled(100n, point!.metadata)).toEqual([
      [102n, 105n],
      [200n, 210n],
    ]);
  });

  it('commits its point again after RECOMMIT_MS and in every new generation, and shrinks the metadata when told', () => {
    const t = new OffsetTracker();
    t.retain({ events: [0] });
    t.register('events', 0, '0').hold();
    for (let o = 1; o <= 40; o += 2) t.register('events', 0, String(o)) && t.register('events', 0, String(o + 1)).hold();
    const [p] = t.due(1_000);
    t.committed(p!, 1_000);
    expect(t.due(1_000 + RECOMMIT_MS - 1)).toEqual([]);
    expect(t.due(1_000 + RECOMMIT_MS)).toEqual([p]);
    t.committed(p!, 1_000 + RECOMMIT_MS);
    t.retain({ events: [0] });
    expect(t.due(1_000 + RECOMMIT_MS)).toEqual([p]);
    const full = p!.metadata!.length;
    t.shrinkMetadata();
    t.shrinkMetadata();
    t.shrinkMetadata();
    t.shrinkMetadata();
    t.shrinkMetadata();
    t.shrinkMetadata();
    const [small] = t.due(1_000 + RECOMMIT_MS);
    expect(small!.metadata!.length).toBeLessThanOrEqual(Math.floor(MAX_METADATA_CHARS / 64));
    expect(small!.metadata!.length).toBeLessThan(full);
  });

  it('looks at the first MAX_WALK records past the commit point at most', () => {
    const open = Array.from({ length: MAX_WALK + 10 }, (_, i) => ({ offset: BigInt(i + 1), unsettled: i === MAX_WALK + 5 ? 1 : 0 }));
    expect(decodeSettled(0n, encodeSettled(0n, open, [[BigInt(MAX_WALK) + 100n, BigInt(MAX_WALK) + 200n]]))).toEqual([[1n, BigInt(MAX_WALK) + 1n]]);
  });
});

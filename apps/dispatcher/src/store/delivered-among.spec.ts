import { deliveredAmong, ONE_BY_ONE_BELOW, type DeliveredBuckets } from './delivered-among';

const SIZE = 15_000;

/** Buckets of SIZE ms holding the given delivered ids (attempt count: the digit after `e`); records every query. */
function fakeBuckets(stored: Record<number, string[]>, fail = false) {
  const queries: { bucket: string; ids: string[] }[] = [];
  const answer = <R>(name: string, start: number, ids: string[]) => {
    queries.push({ bucket: name, ids });
    if (fail) throw new Error('database down');
    return (stored[start] ?? []).filter((id) => ids.includes(id)).map((_id) => ({ _id, attemptCount: Number(_id.slice(1, 2)) })) as R;
  };
  const buckets: DeliveredBuckets = {
    of(at: Date) {
      const start = Math.floor(at.getTime() / SIZE) * SIZE;
      const name = `delivered_b${start}_${SIZE}`;
      return {
        collection: { collectionName: name },
        find: (filter: object) => ({ lean: async <R>() => answer<R>(name, start, (filter as { _id: { $in: string[] } })._id.$in) }),
        findOne: (filter: object) => ({ lean: async <R>() => answer<R[]>(name, start, [(filter as { _id: string })._id])[0] ?? null }),
      };
    },
  };
  return { buckets, queries };
}

const at = (ms: number) => new Date(ms);

describe('deliveredAmong', () => {
  it('asks a bucket once for all of its deliveries when there are many, and returns those delivered with their attempt counts', async () => {
    const { buckets, queries } = fakeBuckets({ 0: ['e1|a', 'e2|a'] });
    const many = Array.from({ length: ONE_BY_ONE_BELOW + 3 }, (_, i) => ({ deliveryId: `e${i}|a`, eventCreatedAt: at(i) }));
    const found = await deliveredAmong(buckets, [...many, { deliveryId: 'e1|a', eventCreatedAt: at(10) }]);
    expect([...found].sort()).toEqual([['e1|a', 1], ['e2|a', 2]]);
    expect(queries).toHaveLength(1);
    expect(queries[0]!.ids).toHaveLength(ONE_BY_ONE_BELOW + 3);
  });

  it('looks a few up one by one, bucket by bucket', async () => {
    const { buckets, queries } = fakeBuckets({ 0: ['e1|a'], [SIZE]: ['e9|b'] });
    const found = await deliveredAmong(buckets, [
      { deliveryId: 'e1|a', eventCreatedAt: at(10) },
      { deliveryId: 'e3|a', eventCreatedAt: at(30) },
      { deliveryId: 'e9|b', eventCreatedAt: at(SIZE + 5) },
    ]);
    expect([...found].sort()).toEqual([['e1|a', 1], ['e9|b', 9]]);
    expect(queries.map((q) => `${q.bucket}:${q.ids.join()}`).sort()).toEqual([`delivered_b0_${SIZE}:e1|a`, `delivered_b0_${SIZE}:e3|a`, `delivered_b${SIZE}_${SIZE}:e9|b`]);
  });

  it('asks nothing for no deliveries, and throws when the database does not answer', async () => {
    const quiet = fakeBuckets({});
    expect((await deliveredAmong(quiet.buckets, [])).size).toBe(0);
    expect(quiet.queries).toHaveLength(0);
    const down = fakeBuckets({}, true);
    await expect(deliveredAmong(down.buckets, [{ deliveryId: 'e1|a', eventCreatedAt: at(1) }])).rejects.toThrow('database down');
  });
});

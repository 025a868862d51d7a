import { deliveredAmong, type DeliveredBuckets } from './delivered-among';

const SIZE = 15_000;

/** Buckets of SIZE ms holding the given delivered ids; records every query. */
function fakeBuckets(stored: Record<number, string[]>, fail = false) {
  const queries: { bucket: string; ids: string[] }[] = [];
  const buckets: DeliveredBuckets = {
    of(at: Date) {
      const start = Math.floor(at.getTime() / SIZE) * SIZE;
      const name = `delivered_b${start}_${SIZE}`;
      return {
        collection: { collectionName: name },
        find(filter: object) {
          const ids = (filter as { _id: { $in: string[] } })._id.$in;
          return {
            lean: async <R>() => {
              queries.push({ bucket: name, ids });
              if (fail) throw new Error('database down');
              return (stored[start] ?? []).filter((id) => ids.includes(id)).map((_id) => ({ _id, attemptCount: Number(_id.slice(1, 2)) })) as R;
            },
          };
        },
      };
    },
  };
  return { buckets, queries };
}

describe('deliveredAmong', () => {
  it('asks each time bucket once for all of its deliveries and returns those delivered, with their attempt counts', async () => {
    const { buckets, queries } = fakeBuckets({ 0: ['e1|a', 'e2|a'], [SIZE]: ['e9|b'] });
    const at = (ms: number) => new Date(ms);
    const found = await deliveredAmong(buckets, [
      { deliveryId: 'e1|a', eventCreatedAt: at(10) },
      { deliveryId: 'e2|a', eventCreatedAt: at(20) },
      { deliveryId: 'e3|a', eventCreatedAt: at(30) },
      { deliveryId: 'e1|a', eventCreatedAt: at(10) },
      { deliveryId: 'e9|b', eventCreatedAt: at(SIZE + 5) },
      { deliveryId: 'e8|b', eventCreatedAt: at(SIZE + 6) },
    ]);
    expect([...found].sort()).toEqual([['e1|a', 1], ['e2|a', 2], ['e9|b', 9]]);
    expect(queries).toHaveLength(2);
    expect(queries.find((q) => q.bucket === `delivered_b0_${SIZE}`)!.ids.sort()).toEqual(['e1|a', 'e2|a', 'e3|a']);
    expect(queries.find((q) => q.bucket === `delivered_b${SIZE}_${SIZE}`)!.ids.sort()).toEqual(['e8|b', 'e9|b']);
  });

  it('asks nothing for no deliveries, and throws when the database does not answer', async () => {
    const quiet = fakeBuckets({});
    expect((await deliveredAmong(quiet.buckets, [])).size).toBe(0);
    expect(quiet.queries).toHaveLength(0);
    const down = fakeBuckets({}, true);
    await expect(deliveredAmong(down.buckets, [{ deliveryId: 'e1|a', eventCreatedAt: new Date(1) }])).rejects.toThrow('database down');
  });
});

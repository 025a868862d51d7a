// Which of many deliveries succeeded already, in one query per time bucket. On FerretDB every
// query scans its bucket: a lookup by _id ~170 ms at 20,000 documents, a query for 200 ids at once
// ~2.2 s (the same as reading the whole bucket), so past a dozen ids one query for all is far
// cheaper than one lookup each; on MongoDB both are index probes.
/** Below this many ids in a bucket, one lookup each (cheaper on FerretDB than a query reading the bucket). */
export const ONE_BY_ONE_BELOW = 12;

type Delivered = { _id: string; attemptCount: number };

/** What deliveredAmong reads (Bucketed<DeliveredDoc> in production): a bucket's name, a find by ids, a lookup by id. */
export type DeliveredBuckets = {
  of(at: Date): {
    collection: { collectionName: string };
    find(filter: object, projection: object): { lean<R>(): PromiseLike<R> };
    findOne(filter: object, projection: object): { lean<R>(): PromiseLike<R | null> };
  };
};

/**
 * Of `deliveries` (ids `${eventId}|${endpointId}`), those with a `delivered` record, each with the
 * attempts it took. Throws when the database does not answer.
 */
export async function deliveredAmong(buckets: DeliveredBuckets, deliveries: { deliveryId: string; eventCreatedAt: Date }[]): Promise<Map<string, number>> {
  const byBucket = new Map<string, { bucket: ReturnType<DeliveredBuckets['of']>; ids: Set<string> }>();
  for (const d of deliveries) {
    const bucket = buckets.of(d.eventCreatedAt);
    const name = bucket.collection.collectionName;
    const group = byBucket.get(name) ?? { bucket, ids: new Set<string>() };
    group.ids.add(d.deliveryId);
    byBucket.set(name, group);
  }
  const found = new Map<string, number>();
  const projection = { _id: 1, attemptCount: 1 };
  await Promise.all(
    [...byBucket.values()].map(async ({ bucket, ids }) => {
      const docs =
        ids.size < ONE_BY_ONE_BELOW
          ? await Promise.all([...ids].map((_id) => bucket.findOne({ _id }, projection).lean<Delivered>()))
          : await bucket.find({ _id: { $in: [...ids] } }, projection).lean<Delivered[]>();
      for (const d of docs) if (d) found.set(d._id, d.attemptCount);
    }),
  );
  return found;
}

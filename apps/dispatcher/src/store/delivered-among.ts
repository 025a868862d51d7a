// Which of many deliveries succeeded already, in one query per time bucket. On FerretDB every
// lookup scans its bucket (~170 ms at 20,000 documents, about as long as one query for 200 ids),
// so checking a Kafka chunk's tasks one lookup at a time costs a scan per task.
/** What deliveredAmong reads (Bucketed<DeliveredDoc> in production): a bucket's name and a find by ids. */
export type DeliveredBuckets = {
  of(at: Date): {
    collection: { collectionName: string };
    find(filter: object, projection: object): { lean<R>(): PromiseLike<R> };
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
  await Promise.all(
    [...byBucket.values()].map(async ({ bucket, ids }) => {
      for (const d of await bucket.find({ _id: { $in: [...ids] } }, { _id: 1, attemptCount: 1 }).lean<{ _id: string; attemptCount: number }[]>()) found.set(d._id, d.attemptCount);
    }),
  );
  return found;
}

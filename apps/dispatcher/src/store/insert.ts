// insertMany that treats "already there" as success.
const DUPLICATE_KEY = 11000;

/** Inserts what is not there yet; returns the ids this call inserted. Other write errors are thrown. */
export async function insertIgnoringDuplicates<T extends { _id: string }>(model: InsertTarget<T>, docs: T[]): Promise<Set<string>> {
  const ids = new Set(docs.map((d) => d._id));
  if (docs.length === 0) return ids;
  try {
    await model.insertMany(docs, { ordered: false, lean: true });
  } catch (err) {
    const writeErrors = (err as { writeErrors?: { code?: number; err?: { code?: number; index?: number }; index?: number }[] }).writeErrors;
    if (!writeErrors || writeErrors.some((w) => (w.code ?? w.err?.code) !== DUPLICATE_KEY)) throw err;
    for (const w of writeErrors) {
      const i = w.index ?? w.err?.index;
      if (i !== undefined) ids.delete(docs[i]!._id);
    }
  }
  return ids;
}

type InsertTarget<T> = { insertMany(docs: T[], opts: object): Promise<unknown> };

/**
 * insertIgnoringDuplicates into time buckets: each document to the bucket of `timeOf(doc)`, one
 * insertMany per bucket. A document whose bucket is past retention is not written (and counts as
 * inserted: nothing of its event is kept to compare with).
 */
export async function insertIntoBuckets<T extends { _id: string }>(buckets: { forWrite(t: Date): Promise<InsertTarget<T> | undefined> }, docs: T[], timeOf: (doc: T) => Date): Promise<Set<string>> {
  const byBucket = new Map<InsertTarget<T>, T[]>();
  const expired: string[] = [];
  for (const d of docs) {
    const model = await buckets.forWrite(timeOf(d));
    if (!model) expired.push(d._id);
    else if (byBucket.has(model)) byBucket.get(model)!.push(d);
    else byBucket.set(model, [d]);
  }
  const inserted = await Promise.all([...byBucket].map(([model, group]) => insertIgnoringDuplicates(model, group)));
  return new Set([...expired, ...inserted.flatMap((ids) => [...ids])]);
}

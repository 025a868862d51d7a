// Expiring collections split into time buckets. FerretDB scans the whole collection for every
// delete whatever it matches (in the soak a sweep of ~100,000 documents timed out its clients and
// stalled every write behind it), while dropping a collection is one cheap statement on FerretDB
// and MongoDB alike. So each expiring collection is a series of collections
// `<name>_b<startMs>_<sizeMs>`. A document goes to the bucket of its event's creation time: every
// document of one event and of one delivery shares a bucket, so unique ids and the
// attempt-number index work within it. A bucket is dropped whole once its newest possible event
// is past retention (store/retention.ts). Readers that know the event's time go straight to its
// bucket; the others ask every bucket and merge. Nothing is written to a bucket past retention
// (it would come back as a collection without its indexes once dropped), and a bucket is dropped a
// margin later than that, so replicas with slightly different clocks never write to a dropped one.
import type { Connection, Model, Schema } from 'mongoose';

export interface Bucket<T> {
  name: string;
  /** Events created in [start, end) have their documents here. */
  start: number;
  end: number;
  model: Model<T>;
}

type Filter = Record<string, unknown>;
type Sort = Record<string, 1 | -1>;

const NAMESPACE_NOT_FOUND = 26;

/** How long after the last write it may take a bucket is dropped (clock differences between replicas). */
export const dropMarginFor = (sizeMs: number): number => Math.max(sizeMs, 5_000);

/** Bucket size for a retention: an eighth of it (documents outlive retention by at most that), from 1 s to 1 day. */
export const bucketSizeFor = (retentionMs: number): number => Math.min(Math.max(Math.round(retentionMs / 8 / 1000) * 1000, 1_000), 24 * 3600 * 1000);

export class Bucketed<T> {
  private readonly models = new Map<string, Model<T>>();
  private readonly ready = new Map<string, Promise<void>>();
  private readonly pattern: RegExp;

  constructor(
    private readonly db: Connection,
    readonly name: string,
    private readonly schema: Schema<T>,
    readonly sizeMs: number,
    private readonly retentionMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.pattern = new RegExp(`^${name}_b(\\d+)_(\\d+)$`);
  }

  private nameOf(at: Date | number): { name: string; end: number } {
    const start = Math.floor(Number(at) / this.sizeMs) * this.sizeMs;
    return { name: `${this.name}_b${start}_${this.sizeMs}`, end: start + this.sizeMs };
  }

  /** The bucket of events created at `at`, to read (it may not exist: reads then find nothing). */
  of(at: Date | number): Model<T> {
    return this.model(this.nameOf(at).name);
  }

  /**
   * The bucket of events created at `at`, to write, with its indexes (created once per process);
   * undefined when the bucket is past retention (its documents would be dropped anyway).
   */
  async forWrite(at: Date | number): Promise<Model<T> | undefined> {
    const { name, end } = this.nameOf(at);
    if (end + this.retentionMs <= this.now()) return undefined;
    const model = this.model(name);
    let ready = this.ready.get(name);
    if (!ready) {
      ready = model.createIndexes().then(() => undefined);
      this.ready.set(name, ready);
      ready.catch(() => this.ready.delete(name));
    }
    await ready;
    return model;
  }

  /** Every bucket there is, newest first. */
  async all(): Promise<Bucket<T>[]> {
    const collections = await this.db.db!.listCollections({}, { nameOnly: true }).toArray();
    const buckets: Bucket<T>[] = [];
    for (const { name } of collections) {
      const m = this.pattern.exec(name);
      if (!m) continue;
      const start = Number(m[1]);
      buckets.push({ name, start, end: start + Number(m[2]), model: this.model(name) });
    }
    return buckets.sort((a, b) => b.start - a.start);
  }

  /** The first document matching, newest bucket first. */
  async findOne(filter: Filter, projection?: Record<string, 1>): Promise<T | null> {
    const found = await Promise.all((await this.all()).map((b) => b.model.findOne(filter, projection).lean<T>()));
    return found.find((d) => d !== null) ?? null;
  }

  async exists(filter: Filter): Promise<boolean> {
    return (await this.findOne(filter, { _id: 1 } as Record<string, 1>)) !== null;
  }

  async countDocuments(filter: Filter): Promise<number> {
    const counts = await Promise.all((await this.all()).map((b) => b.model.countDocuments(filter)));
    return counts.reduce((a, n) => a + n, 0);
  }

  /**
   * Documents matching over `buckets` (default: every bucket), in `sort` order, at most `limit`
   * (default all): each bucket answers its own first `limit`, merged here. Each document comes
   * with the bucket it is in.
   */
  async find(filter: Filter, opts: { sort?: Sort; limit?: number; projection?: Record<string, 1> } = {}, buckets?: Bucket<T>[]): Promise<{ doc: T; bucket: Bucket<T> }[]> {
    const from = buckets ?? (await this.all());
    const parts = await Promise.all(
      from.map(async (bucket) => {
        let q = bucket.model.find(filter, opts.projection);
        if (opts.sort) q = q.sort(opts.sort);
        if (opts.limit !== undefined) q = q.limit(opts.limit);
        return (await q.lean<T[]>()).map((doc) => ({ doc, bucket }));
      }),
    );
    const order = Object.entries(opts.sort ?? {});
    const compare = (a: T, b: T): number => {
      for (const [field, dir] of order) {
        const x = (a as Record<string, unknown>)[field] as string | number | Date;
        const y = (b as Record<string, unknown>)[field] as string | number | Date;
        if (x < y) return -dir;
        if (x > y) return dir;
      }
      return 0;
    };
    return parts
      .flat()
      .sort((a, b) => compare(a.doc, b.doc))
      .slice(0, opts.limit ?? Infinity);
  }

  /** Drops every bucket whose events are all past retention (plus the drop margin) at `now`; returns their names. */
  async dropExpired(now = this.now()): Promise<string[]> {
    const dropped: string[] = [];
    for (const b of await this.all()) {
      if (b.end + this.retentionMs + dropMarginFor(b.end - b.start) > now) continue;
      try {
        await this.db.db!.dropCollection(b.name);
      } catch (err) {
        if ((err as { code?: number }).code !== NAMESPACE_NOT_FOUND) throw err;
      }
      this.models.delete(b.name);
      this.ready.delete(b.name);
      dropped.push(b.name);
    }
    return dropped;
  }

  private model(name: string): Model<T> {
    let model = this.models.get(name);
    if (!model) {
      // One mongoose model per bucket, sharing the schema (and its indexes).
      model = (this.db.models[name] as Model<T> | undefined) ?? this.db.model<T>(name, this.schema, name);
      this.models.set(name, model);
    }
    return model;
  }
}

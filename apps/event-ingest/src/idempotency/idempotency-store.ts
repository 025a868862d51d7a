// Idempotency keys in MongoDB. FerretDB has no TTL indexes, so expiry is a field plus a sweeper
// (and a TTL index where the server accepts one). Uniqueness comes from _id, which every
// MongoDB-compatible server enforces, so two racing calls cannot both claim a key.
//
// The happy path only inserts: one insertMany of the batch's claims, then (after Kafka
// acknowledged) one insertMany of "published" markers in a second collection. It never updates a
// claim. On FerretDB (SQLite) every update or delete scans the collection and writes are
// serialised: measured at 20,000 keys, updateMany {_id: {$in: 50 ids}} took ~3.5 s while
// insertMany of 100 took ~3 ms, so marking keys published with an update capped keyed ingest near
// 150 events/s. Updates remain only on rare paths: taking over an expired or abandoned claim, and
// releasing the claims of a publish that failed. Concurrent calls share their inserts too
// (GroupedInserts): FerretDB serialises writes, so 32 single keyed PublishEvent calls writing two
// one-document inserts each were capped by the round trips, not by the documents.
import { Schema, type Connection, type Model, type mongo } from 'mongoose';
import type { Logger } from '@hookline/service-kit';

interface KeyDoc {
  /** `${workspaceId}\u0000${idempotencyKey}` */
  _id: string;
  eventId: string;
  createdAt: Date;
  expiresAt: Date;
  /**
   * Written as `pending` and no longer changed: publication is a PublishedDoc for `eventId`.
   * `published` is still honoured on claims written before the markers existed.
   */
  state: 'pending' | 'published';
  /** A pending claim older than this was abandoned (crash); it may be taken over. */
  claimedUntil: Date;
}

/** "Kafka acknowledged this event": written once per event id, never changed. */
interface PublishedDoc {
  /** The event id of the claim (a claim taken over after expiry gets a new one). */
  _id: string;
  /** The claim's _id, for people reading the collection. */
  key: string;
  expiresAt: Date;
}

export interface ClaimRequest {
  workspaceId: string;
  key: string;
  /** The id the event gets if this call claims the key first. */
  eventId: string;
  createdAt: Date;
}

export type ClaimResult =
  | { kind: 'claimed'; eventId: string; createdAt: Date }
  | { kind: 'duplicate'; eventId: string; createdAt: Date }
  | { kind: 'in-progress' };

export interface IdempotencyStore {
  /**
   * Claims each key for a new event, or reports the event that already has it; one result per
   * request, in order. The keys must be distinct (the caller folds repeats within a batch).
   */
  claim(requests: ClaimRequest[]): Promise<ClaimResult[]>;
  /** Records that the events of these claims were acknowledged by Kafka. */
  markPublished(claims: { workspaceId: string; key: string; eventId: string }[]): Promise<void>;
  /**
   * Hands back claims whose publish failed (or may have failed): the next claim takes them over
   * at once, keeping the event id, so an ambiguous failure can never yield two different events.
   */
  release(workspaceId: string, keys: string[]): Promise<void>;
}

const DUPLICATE_KEY = 11000;
const CLAIM_MS = 30_000;
const docId = (workspaceId: string, key: string) => `${workspaceId}\u0000${key}`;

export class MongoIdempotencyStore implements IdempotencyStore {
  private readonly model: Model<KeyDoc>;
  private readonly published: Model<PublishedDoc>;
  /** The driver's collections, for the bulk inserts and sweeps (no per-document mongoose casting). */
  private readonly keys: mongo.Collection<KeyDoc>;
  private readonly markers: mongo.Collection<PublishedDoc>;
  private readonly keyInserts: GroupedInserts<KeyDoc>;
  private readonly markerInserts: GroupedInserts<PublishedDoc>;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    db: Connection,
    private readonly windowMs: number,
    private readonly log: Logger,
  ) {
    const schema = new Schema<KeyDoc>(
      { _id: String, eventId: String, createdAt: Date, expiresAt: Date, state: String, claimedUntil: Date },
      { collection: 'idempotency_keys', versionKey: false, autoIndex: false },
    );
    schema.index({ expiresAt: 1 });
    this.model = db.model<KeyDoc>('IdempotencyKey', schema);
    const publishedSchema = new Schema<PublishedDoc>({ _id: String, key: String, expiresAt: Date }, { collection: 'idempotency_published', versionKey: false, autoIndex: false });
    publishedSchema.index({ expiresAt: 1 });
    this.published = db.model<PublishedDoc>('IdempotencyPublished', publishedSchema);
    this.keys = this.model.collection as unknown as mongo.Collection<KeyDoc>;
    this.markers = this.published.collection as unknown as mongo.Collection<PublishedDoc>;
    this.keyInserts = new GroupedInserts(this.keys);
    this.markerInserts = new GroupedInserts(this.markers);
  }

  async init(): Promise<void> {
    await this.model.createIndexes();
    await this.published.createIndexes();
  }

  /**
   * Deletes expired keys and markers every `everyMs` (default 15 min). Correctness never waits
   * for it (a claim checks expiresAt itself); it only bounds the collections. On FerretDB a
   * deleteMany scans the whole collection while holding the serialised writer (~0.5 s per 20,000
   * documents measured), stalling every claim meanwhile: once a minute cost keyed ingest about a
   * third of its rate in a 15 s bench phase holding ~100,000 keys.
   */
  startSweeper(everyMs = 15 * 60_000): void {
    this.sweeper = setInterval(() => {
      const expired = { expiresAt: { $lt: new Date() } };
      const failed = (collection: string) => (err: unknown) => this.log.warn({ err, collection }, 'idempotency sweep failed');
      this.keys.deleteMany(expired).catch(failed(this.keys.collectionName));
      this.markers.deleteMany(expired).catch(failed(this.markers.collectionName));
    }, everyMs);
    this.sweeper.unref();
  }

  stopSweeper(): void {
    clearInterval(this.sweeper);
  }

  async claim(requests: ClaimRequest[]): Promise<ClaimResult[]> {
    if (requests.length === 0) return [];
    const now = new Date();
    const docs: KeyDoc[] = requests.map((r) => ({
      _id: docId(r.workspaceId, r.key),
      eventId: r.eventId,
      createdAt: r.createdAt,
      expiresAt: new Date(now.getTime() + this.windowMs),
      state: 'pending',
      claimedUntil: new Date(now.getTime() + CLAIM_MS),
    }));
    // Every key that is free gets inserted; each taken one is looked at.
    const inserted = await this.keyInserts.insert(docs);
    return Promise.all(requests.map((r, i) => (inserted[i] ? { kind: 'claimed', eventId: r.eventId, createdAt: r.createdAt } : this.existing(r, now))));
  }

  /** The key is already claimed: decide between duplicate, in-progress and taking it over. */
  private async existing(r: ClaimRequest, now: Date): Promise<ClaimResult> {
    const _id = docId(r.workspaceId, r.key);
    const existing = await this.model.findById(_id).lean<KeyDoc>();
    if (!existing) return (await this.claim([r]))[0]!; // swept meanwhile
    if (existing.expiresAt < now) {
      // Outside the window: the key is free again, for a new event (markers are per event id, so
      // the old event's marker does not make the new one look published).
      const taken = await this.model.findOneAndUpdate(
        { _id, expiresAt: existing.expiresAt },
        { $set: { eventId: r.eventId, createdAt: r.createdAt, expiresAt: new Date(now.getTime() + this.windowMs), state: 'pending', claimedUntil: new Date(now.getTime() + CLAIM_MS) } },
      );
      return taken ? { kind: 'claimed', eventId: r.eventId, createdAt: r.createdAt } : { kind: 'in-progress' };
    }
    if (existing.state === 'published' || (await this.published.exists({ _id: existing.eventId }))) {
      return { kind: 'duplicate', eventId: existing.eventId, createdAt: existing.createdAt };
    }
    if (existing.claimedUntil < now) {
      // Abandoned by a crashed call, which may or may not have reached Kafka: publish again under
      // the SAME event id, so receivers (and the dispatcher) see at most a duplicate, never two events.
      const taken = await this.model.findOneAndUpdate({ _id, claimedUntil: existing.claimedUntil }, { $set: { claimedUntil: new Date(now.getTime() + CLAIM_MS) } });
      return taken ? { kind: 'claimed', eventId: existing.eventId, createdAt: existing.createdAt } : { kind: 'in-progress' };
    }
    return { kind: 'in-progress' };
  }

  async markPublished(claims: { workspaceId: string; key: string; eventId: string }[]): Promise<void> {
    if (claims.length === 0) return;
    // Kept a little longer than the claim they belong to (its window started at the claim).
    const expiresAt = new Date(Date.now() + this.windowMs);
    // A marker already there is fine: a takeover re-published the same event id.
    await this.markerInserts.insert(claims.map((c) => ({ _id: c.eventId, key: docId(c.workspaceId, c.key), expiresAt })));
  }

  async release(workspaceId: string, keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    // Not a delete: the produce may have reached the broker although it reported a failure (a
    // timeout after the write). Keeping the event id makes the retry a same-id duplicate at worst.
    // An update, so slow on FerretDB; only failed publishes come here.
    await this.model.updateMany({ _id: { $in: keys.map((k) => docId(workspaceId, k)) }, state: 'pending' }, { $set: { claimedUntil: new Date(0) } });
  }
}

/**
 * Unordered insertMany shared by concurrent callers: one in flight per collection; documents
 * queued meanwhile go together in the next one (up to MAX_GROUP_DOCS). Each caller learns, per
 * document, whether it was inserted or its _id was taken. Any other failure fails every caller of
 * that insertMany (nothing can be concluded per document then).
 */
class GroupedInserts<T extends { _id: string }> {
  private readonly queue: { docs: T[]; resolve(inserted: boolean[]): void; reject(err: unknown): void }[] = [];
  private running = false;

  constructor(private readonly collection: mongo.Collection<T>) {}

  insert(docs: T[]): Promise<boolean[]> {
    if (docs.length === 0) return Promise.resolve([]);
    const done = new Promise<boolean[]>((resolve, reject) => this.queue.push({ docs, resolve, reject }));
    void this.pump();
    return done;
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const group = [this.queue.shift()!];
        let count = group[0]!.docs.length;
        while (this.queue.length > 0 && count + this.queue[0]!.docs.length <= MAX_GROUP_DOCS) {
          count += this.queue[0]!.docs.length;
          group.push(this.queue.shift()!);
        }
        const docs = group.length === 1 ? group[0]!.docs : group.flatMap((g) => g.docs);
        let taken: Set<number>;
        try {
          await this.collection.insertMany(docs as unknown as mongo.OptionalUnlessRequiredId<T>[], { ordered: false });
          taken = new Set();
        } catch (err) {
          try {
            taken = new Set(duplicateIndexes(err));
          } catch {
            for (const g of group) g.reject(err);
            continue;
          }
        }
        let offset = 0;
        for (const g of group) {
          const start = offset;
          g.resolve(g.docs.map((_, i) => !taken.has(start + i)));
          offset += g.docs.length;
        }
      }
    } finally {
      this.running = false;
    }
  }
}

/** Documents per shared insertMany; a single caller's larger batch (≤ 1,000) still goes whole. */
const MAX_GROUP_DOCS = 1_000;

/**
 * The indexes an unordered insertMany refused because the _id exists. Rethrows `err` when it is
 * anything else (or when any refusal has another cause): then nothing can be concluded per item.
 */
function duplicateIndexes(err: unknown): number[] {
  const writeErrors = (err as { writeErrors?: { index: number; code?: number } | { index: number; code?: number }[] }).writeErrors;
  if (err instanceof Error && err.name === 'MongoBulkWriteError' && writeErrors !== undefined) {
    const list = Array.isArray(writeErrors) ? writeErrors : [writeErrors];
    if (list.length > 0 && list.every((w) => w.code === DUPLICATE_KEY)) return list.map((w) => w.index);
  }
  throw err;
}

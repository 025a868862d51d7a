// Idempotency keys in MongoDB. FerretDB has no TTL indexes, so expiry is a field plus a sweeper
// (and a TTL index where the server accepts one). Uniqueness comes from _id, which every
// MongoDB-compatible server enforces, so two racing calls cannot both claim a key.
import { Schema, type Connection, type Model } from 'mongoose';
import type { Logger } from '@hookline/service-kit';

interface KeyDoc {
  /** `${workspaceId}\u0000${idempotencyKey}` */
  _id: string;
  eventId: string;
  createdAt: Date;
  expiresAt: Date;
  /** pending: claimed, not yet acknowledged by Kafka; published: acknowledged. */
  state: 'pending' | 'published';
  /** A pending claim older than this was abandoned (crash); it may be taken over. */
  claimedUntil: Date;
}

export type ClaimResult =
  | { kind: 'claimed'; eventId: string; createdAt: Date }
  | { kind: 'duplicate'; eventId: string; createdAt: Date }
  | { kind: 'in-progress' };

export interface IdempotencyStore {
  /** Claims the key for a new event, or reports the event that already has it. */
  claim(workspaceId: string, key: string, eventId: string, createdAt: Date): Promise<ClaimResult>;
  markPublished(workspaceId: string, keys: string[]): Promise<void>;
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
  }

  async init(): Promise<void> {
    await this.model.createIndexes();
  }

  /** Deletes expired keys every `everyMs` (default 60 s). */
  startSweeper(everyMs = 60_000): void {
    this.sweeper = setInterval(() => {
      this.model.deleteMany({ expiresAt: { $lt: new Date() } }).catch((err: unknown) => this.log.warn({ err }, 'idempotency sweep failed'));
    }, everyMs);
    this.sweeper.unref();
  }

  stopSweeper(): void {
    clearInterval(this.sweeper);
  }

  async claim(workspaceId: string, key: string, eventId: string, createdAt: Date): Promise<ClaimResult> {
    const _id = docId(workspaceId, key);
    const now = new Date();
    try {
      await this.model.create({ _id, eventId, createdAt, expiresAt: new Date(now.getTime() + this.windowMs), state: 'pending', claimedUntil: new Date(now.getTime() + CLAIM_MS) });
      return { kind: 'claimed', eventId, createdAt };
    } catch (err) {
      if ((err as { code?: unknown }).code !== DUPLICATE_KEY) throw err;
    }
    const existing = await this.model.findById(_id).lean<KeyDoc>();
    if (!existing) return this.claim(workspaceId, key, eventId, createdAt); // released meanwhile
    if (existing.expiresAt < now) {
      // Outside the window: the key is free again.
      const taken = await this.model.findOneAndUpdate(
        { _id, expiresAt: existing.expiresAt },
        { $set: { eventId, createdAt, expiresAt: new Date(now.getTime() + this.windowMs), state: 'pending', claimedUntil: new Date(now.getTime() + CLAIM_MS) } },
      );
      return taken ? { kind: 'claimed', eventId, createdAt } : { kind: 'in-progress' };
    }
    if (existing.state === 'published') return { kind: 'duplicate', eventId: existing.eventId, createdAt: existing.createdAt };
    if (existing.claimedUntil < now) {
      // Abandoned by a crashed call, which may or may not have reached Kafka: publish again under
      // the SAME event id, so receivers (and the dispatcher) see at most a duplicate, never two events.
      const taken = await this.model.findOneAndUpdate({ _id, claimedUntil: existing.claimedUntil }, { $set: { claimedUntil: new Date(now.getTime() + CLAIM_MS) } });
      return taken ? { kind: 'claimed', eventId: existing.eventId, createdAt: existing.createdAt } : { kind: 'in-progress' };
    }
    return { kind: 'in-progress' };
  }

  async markPublished(workspaceId: string, keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.model.updateMany({ _id: { $in: keys.map((k) => docId(workspaceId, k)) } }, { $set: { state: 'published' } });
  }

  async release(workspaceId: string, keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    // Not a delete: the produce may have reached the broker although it reported a failure (a
    // timeout after the write). Keeping the event id makes the retry a same-id duplicate at worst.
    await this.model.updateMany({ _id: { $in: keys.map((k) => docId(workspaceId, k)) }, state: 'pending' }, { $set: { claimedUntil: new Date(0) } });
  }
}

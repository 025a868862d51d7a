// Retention: every dispatcher document carries `expiresAt` (written at insert, RETENTION_DAYS
// after). Where the server has TTL indexes (MongoDB) they remove expired documents; where it has
// none (FerretDB answers NotImplemented to `expireAfterSeconds`) the sweeper does. RETENTION_MODE:
// `auto` tries the TTL index per collection and falls back to the sweeper, `ttl` insists (start-up
// fails without it), `sweeper` never asks.
//
// The sweeper deletes by time slices rather than by counted batches: each step removes what
// expired in one slice (`expiresAt` before the slice's end), one deleteMany per collection. On
// MongoDB that is an index range of bounded size; on FerretDB every delete scans the collection
// whatever it matches (measured: 1,000 or 3,800 of 20,000 documents cost the same ~1.6-2 s on a
// busy 2-core box; a `$in` of 100 ids costs more), so few slice deletes cost far less than many
// small batches. Steps are spaced out (it yields between them), so the write path never waits
// behind more than one delete, and a sweeper that was off catches up slice by slice.
import type { Model } from 'mongoose';
import type { Logger } from '@hookline/service-kit';

export type RetentionMode = 'auto' | 'ttl' | 'sweeper';

export interface RetentionOptions {
  mode: RetentionMode;
  /** How often the sweeper steps. */
  intervalMs: number;
  now?: () => number;
}

interface Collection {
  name: string;
  model: Model<{ expiresAt: Date }>;
  /** Swept up to here (exclusive): nothing older is left. */
  sweptTo: number;
}

/** TTL indexes are refused with code 238 (NotImplemented) by FerretDB 1.24. */
const isNotImplemented = (err: unknown): boolean => (err as { code?: number; codeName?: string }).code === 238 || (err as { codeName?: string }).codeName === 'NotImplemented';

export class Retention {
  private readonly swept: Collection[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Only the replica that owns partition 0 of the events topic sweeps (one sweeper per deployment). */
  private active = false;
  private running: Promise<void> | undefined;
  private readonly now: () => number;
  /** How each collection's expiry is enforced, for logs and tests. */
  readonly how = new Map<string, 'ttl' | 'sweeper'>();

  constructor(
    private readonly models: Record<string, Model<{ expiresAt: Date }>>,
    private readonly opts: RetentionOptions,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Creates TTL indexes where asked and possible; the rest is left to the sweeper (start()). */
  async prepare(): Promise<void> {
    for (const [name, model] of Object.entries(this.models)) {
      if (this.opts.mode !== 'sweeper') {
        try {
          // expireAfterSeconds 0: a document expires at its own `expiresAt`.
          await model.collection.createIndex({ expiresAt: 1 }, { name: 'expiresAt_ttl', expireAfterSeconds: 0 });
          this.how.set(name, 'ttl');
          continue;
        } catch (err) {
          if (this.opts.mode === 'ttl' || !isNotImplemented(err)) throw err;
        }
      }
      this.how.set(name, 'sweeper');
      this.swept.push({ name, model, sweptTo: 0 });
    }
    this.log.info({ retention: Object.fromEntries(this.how) }, 'retention of dispatcher documents');
  }

  start(): void {
    if (this.swept.length === 0) return;
    this.timer = setInterval(() => {
      if (this.active) void (this.running ??= this.sweep().then(() => undefined).finally(() => (this.running = undefined)));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  /**
   * Whether this replica sweeps. Every replica would otherwise run the same deletes (on FerretDB a
   * scan of each collection each, which timed out under load in the soak); the consumer group
   * already elects one owner per partition, so the owner of partition 0 of the events topic sweeps.
   */
  setActive(active: boolean): void {
    if (active !== this.active) this.log.info({ active }, active ? 'this replica sweeps expired documents' : 'another replica sweeps expired documents');
    this.active = active;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped = true;
    await this.running;
  }

  /**
   * One step per collection: deletes what expired in the oldest slice not yet swept (a slice is
   * one interval of expiry times, so a step deletes about what one interval of traffic wrote).
   * A collection that is behind (a sweeper that was off) takes its next slice one second later
   * instead of one interval later. Returns the documents deleted.
   */
  async sweep(): Promise<number> {
    let total = 0;
    let behind = false;
    for (const c of this.swept) {
      if (this.stopped) break;
      const now = this.now();
      try {
        if (c.sweptTo === 0) {
          // First step of this process: start at the oldest expiry there is.
          const oldest = await c.model.findOne({}, { expiresAt: 1 }).sort({ expiresAt: 1 }).lean<{ expiresAt?: Date }>();
          c.sweptTo = Math.min(oldest?.expiresAt?.getTime() ?? now, now);
        }
        const to = Math.min(now, c.sweptTo + this.opts.intervalMs);
        const { deletedCount } = await c.model.deleteMany({ expiresAt: { $lt: new Date(to) } });
        c.sweptTo = to;
        total += deletedCount;
        if (to < now) behind = true;
        if (deletedCount > 0) this.log.debug({ collection: c.name, deleted: deletedCount }, 'expired documents deleted');
      } catch (err) {
        this.log.warn({ err, collection: c.name }, 'retention sweep failed; trying again next interval');
      }
      // Yield between collections: outcome writes queued behind this delete go first.
      await new Promise((r) => setTimeout(r, 10));
    }
    if (behind && this.timer && !this.stopped) {
      const t = setTimeout(() => void (this.running ??= this.sweep().then(() => undefined).finally(() => (this.running = undefined))), 1_000);
      t.unref();
    }
    return total;
  }
}

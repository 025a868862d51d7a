// Retention: the dispatcher's expiring collections are time buckets by event creation time
// (store/buckets.ts), and a bucket is dropped whole once every event it can hold is older than
// RETENTION_SECONDS. A drop is one statement whatever the bucket holds, on FerretDB as on
// MongoDB, so removing a day of documents never scans a collection or holds up the write path
// (the delete-based sweeper it replaces scanned each collection per step on FerretDB and, in the
// soak, timed out and stalled every write behind it). Documents live at most one bucket
// (an eighth of the retention) and a drop margin past it. No TTL index is needed anywhere.
import type { Logger } from '@hookline/service-kit';
import type { Bucketed } from './buckets';

export interface RetentionOptions {
  /** How often expired buckets are looked for. */
  intervalMs: number;
  now?: () => number;
}

export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Only the replica that owns partition 0 of the events topic drops (one per deployment). */
  private active = false;
  private running: Promise<unknown> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly collections: Bucketed<unknown>[],
    private readonly opts: RetentionOptions,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.active) this.running ??= this.sweep().finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  /**
   * Whether this replica drops expired buckets. Drops are idempotent, but one replica doing them
   * is enough; the consumer group already elects one owner per partition, so the owner of
   * partition 0 of the events topic does.
   */
  setActive(active: boolean): void {
    if (active !== this.active) this.log.info({ active }, active ? 'this replica drops expired buckets' : 'another replica drops expired buckets');
    this.active = active;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped = true;
    await this.running;
  }

  /** Drops every expired bucket of every collection; returns the names dropped. */
  async sweep(): Promise<string[]> {
    const dropped: string[] = [];
    for (const c of this.collections) {
      if (this.stopped) break;
      try {
        dropped.push(...(await c.dropExpired(this.now())));
      } catch (err) {
        this.log.warn({ err, collection: c.name }, 'dropping expired buckets failed; trying again next interval');
      }
    }
    if (dropped.length > 0) this.log.info({ dropped }, 'expired buckets dropped');
    return dropped;
  }
}

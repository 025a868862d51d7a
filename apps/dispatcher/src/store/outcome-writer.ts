// Records attempt outcomes in groups. Per delivery the pipeline writes an attempt, the delivery's
// new state and (on success) the endpoint's health. FerretDB serialises writes, and its updates
// scan the collection (~50 ms each at 20,000 documents) while inserts are cheap (~25,000
// documents/s as insertMany). So outcomes that complete together are written together, and as
// inserts wherever possible: a delivery that exists only in memory (its first attempt, straight
// from Kafka) inserts its final state — into `delivered` on success, into `deliveries` when it
// must be retried or failed — and only deliveries already in the database are updated. Endpoint
// health is written when it changes, and at most every HEALTH_REFRESH_MS while it does not.
// record() resolves only after its group is durable, so callers keep their at-least-once ordering.
import type { AttemptDoc, DeliveredDoc, DeliveryDoc, DispatcherModels } from './models';
import { insertIgnoringDuplicates } from './insert';

/** Where a delivery held in memory stands in the database. Read and written only inside the writer's sequence. */
export interface DeliveryTrack {
  /** A document for it exists in `deliveries` (spilled, or taken by the scheduler): outcomes update it. */
  recorded: boolean;
  /** Its outcome, or the document spilled for it, is durable. */
  done: boolean;
}

const HEALTH_REFRESH_MS = 30_000;

export interface DeliveryOutcome {
  deliveryId: string;
  owner: string;
  /** The attempt made, or undefined when none was (endpoint gone before the attempt). */
  attempt?: AttemptDoc;
  /** The delivery's new state. Successes are grouped; the rest are written one by one. */
  set: { state: 'pending' | 'succeeded' | 'failed'; nextAttemptAt: Date | null; lastError: string; attemptCount: number };
  /** Endpoint health to mark succeeded ("workspace|endpoint"), for successes. */
  healthyEndpoint?: { id: string; workspaceId: string; endpointId: string };
  /** A delivery held in memory: its document (inserted with the outcome unless it has been recorded since) and its track. */
  fresh?: { doc: DeliveryDoc; track: DeliveryTrack };
}

interface Pending {
  outcome: DeliveryOutcome;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class OutcomeWriter {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Endpoints whose health this writer marked healthy, until when that is trusted. */
  private readonly healthyUntil = new Map<string, number>();

  constructor(
    private readonly models: DispatcherModels,
    private readonly now: () => number = Date.now,
    /** Longest an outcome waits for companions. Default 2 ms: far below one attempt's duration. */
    private readonly lingerMs = 2,
    /** Largest group; more starts another. */
    private readonly maxGroup = 500,
  ) {}

  record(outcome: DeliveryOutcome): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ outcome, resolve, reject });
      if (this.queue.length >= this.maxGroup) this.kick(0);
      else this.kick(this.lingerMs);
    });
  }

  private kick(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // One group at a time: FerretDB serialises writes anyway, and order per delivery is kept.
      this.flushing = this.flushing.then(() => this.flush());
    }, delayMs);
  }

  /**
   * Runs `fn` between group writes, never beside one. FerretDB writes a document back whole, so
   * two concurrent updates of one document can lose one (a lease renewal racing a recorded
   * success put deliveries back to pending): every other write this replica makes to deliveries
   * it holds goes through here.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.flushing.then(() => withTransientRetry(fn));
    this.flushing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** A failure was recorded for this endpoint: its next success writes health again. */
  forgetHealthy(id: string): void {
    this.healthyUntil.delete(id);
  }

  private async flush(): Promise<void> {
    const group = this.queue.splice(0, this.maxGroup);
    if (this.queue.length > 0) this.kick(0);
    if (group.length === 0) return;
    try {
      await withTransientRetry(() => this.write(group.map((p) => p.outcome)));
      for (const p of group) p.resolve();
    } catch (err) {
      for (const p of group) p.reject(err);
    }
  }

  private async write(outcomes: DeliveryOutcome[]): Promise<void> {
    const now = new Date(this.now());
    const attempts = outcomes.flatMap((o) => (o.attempt ? [o.attempt] : []));
    // Ignoring duplicates makes the whole group safe to write again after a transient error.
    await insertIgnoringDuplicates(this.models.attempts, attempts);

    const cleared = { leaseOwner: '', leaseUntil: new Date(0), updatedAt: now };
    const delivered: DeliveredDoc[] = [];
    const inserted: DeliveryDoc[] = [];
    const succeeded: string[] = [];
    const others: DeliveryOutcome[] = [];
    for (const o of outcomes) {
      const fresh = o.fresh && !o.fresh.track.recorded ? o.fresh.doc : undefined;
      if (fresh && o.set.state === 'succeeded') {
        delivered.push({ _id: fresh._id, eventId: fresh.eventId, workspaceId: fresh.workspaceId, endpointId: fresh.endpointId, eventType: fresh.eventType, eventCreatedAt: fresh.eventCreatedAt, attemptCount: o.set.attemptCount, deliveredAt: now, expiresAt: fresh.expiresAt });
      } else if (fresh) {
        inserted.push({ ...fresh, ...o.set, ...cleared });
      } else if (o.set.state === 'succeeded' && o.attempt) {
        succeeded.push(o.deliveryId);
      } else {
        others.push(o);
      }
    }
    // Already there means another replica met the same Kafka record again (a rebalance or a
    // crash) and wrote it first; its document stands.
    await insertIgnoringDuplicates(this.models.delivered, delivered);
    await insertIgnoringDuplicates(this.models.deliveries, inserted);
    // One write after another: FerretDB serialises writes anyway, and concurrent ones only
    // collide (SQLITE_BUSY).
    if (succeeded.length > 0) {
      // Successes differ only in attemptCount, which each wrote as previous + 1: $inc does the same.
      // A success is final whoever holds the lease now: it is written over any pending state,
      // and clears the lease so a replica that took the delivery over cannot undo it.
      await this.models.deliveries.updateMany(
        { _id: { $in: succeeded }, state: 'pending' },
        { $set: { state: 'succeeded', nextAttemptAt: null, lastError: '', verify: false, ...cleared }, $inc: { attemptCount: 1 } },
      );
    }
    for (const o of others) {
      // Retries and failures: only the lease holder writes; a replica that lost its lease leaves
      // the record to the new owner.
      await this.models.deliveries.updateOne({ _id: o.deliveryId, leaseOwner: o.owner }, { $set: { ...o.set, ...cleared } });
    }
    for (const o of outcomes) if (o.fresh) o.fresh.track.done = true;
    const healthy = new Map(outcomes.flatMap((o) => (o.healthyEndpoint ? [[o.healthyEndpoint.id, o.healthyEndpoint] as const] : [])));
    for (const h of healthy.values()) {
      if ((this.healthyUntil.get(h.id) ?? 0) > now.getTime()) continue;
      await this.models.health.updateOne({ _id: h.id }, { $set: { workspaceId: h.workspaceId, endpointId: h.endpointId, lastSuccessAt: now, failingSince: null } }, { upsert: true });
      this.healthyUntil.set(h.id, now.getTime() + HEALTH_REFRESH_MS);
    }
  }
}

/** FerretDB answers "database is locked (SQLITE_BUSY)" under write contention: worth a retry. */
export function isTransientWriteError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; errorLabels?: unknown } | undefined;
  if (!e) return false;
  if (typeof e.message === 'string' && /SQLITE_BUSY|database is locked/i.test(e.message)) return true;
  return Array.isArray(e.errorLabels) && e.errorLabels.includes('TransientTransactionError');
}

/** Up to 3 more tries, 50-200 ms apart, for transient write errors; others are thrown at once. */
export async function withTransientRetry<T>(fn: () => Promise<T>, tries = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= tries || !isTransientWriteError(err)) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 150));
    }
  }
}

// Records attempt outcomes in groups. Per delivery the pipeline writes an attempt, the delivery's
// new state and (on success) the endpoint's health. One write each costs ~2 ms on FerretDB, which
// serialises writes (~540 single writes/s on our 2-core machines, ~25,000 documents/s as
// insertMany): three writes per delivery would cap a dispatcher near 180 deliveries/s. Outcomes
// that complete together are written together instead: one insertMany of attempts, one
// updateMany for the successes, one upsert per endpoint for health. record() resolves only after
// its group is durable, so callers keep their at-least-once ordering.
import type { DispatcherModels, AttemptDoc } from './models';

export interface DeliveryOutcome {
  deliveryId: string;
  owner: string;
  /** The attempt made, or undefined when none was (endpoint gone before the attempt). */
  attempt?: AttemptDoc;
  /** The delivery's new state. Successes are grouped; the rest are written one by one. */
  set: { state: 'pending' | 'succeeded' | 'failed'; nextAttemptAt: Date | null; lastError: string; attemptCount: number };
  /** Endpoint health to mark succeeded ("workspace|endpoint"), for successes. */
  healthyEndpoint?: { id: string; workspaceId: string; endpointId: string };
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
    if (attempts.length > 0) await this.models.attempts.insertMany(attempts, { ordered: false, lean: true });

    // Successes differ only in attemptCount, which each wrote as previous + 1: $inc does the same.
    const cleared = { leaseOwner: '', leaseUntil: new Date(0), updatedAt: now };
    const succeeded: string[] = [];
    const others: DeliveryOutcome[] = [];
    for (const o of outcomes) {
      if (o.set.state === 'succeeded' && o.attempt) succeeded.push(o.deliveryId);
      else others.push(o);
    }
    // One write after another: FerretDB serialises writes anyway, and concurrent ones only
    // collide (SQLITE_BUSY).
    if (succeeded.length > 0) {
      // A success is final whoever holds the lease now: it is written over any pending state,
      // and clears the lease so a replica that took the delivery over cannot undo it.
      await this.models.deliveries.updateMany(
        { _id: { $in: succeeded }, state: 'pending' },
        { $set: { state: 'succeeded', nextAttemptAt: null, lastError: '', ...cleared }, $inc: { attemptCount: 1 } },
      );
    }
    for (const o of others) {
      // Retries and failures: only the lease holder writes; a replica that lost its lease leaves
      // the record to the new owner.
      await this.models.deliveries.updateOne({ _id: o.deliveryId, leaseOwner: o.owner }, { $set: { ...o.set, ...cleared } });
    }
    const healthy = new Map(outcomes.flatMap((o) => (o.healthyEndpoint ? [[o.healthyEndpoint.id, o.healthyEndpoint] as const] : [])));
    for (const h of healthy.values()) {
      await this.models.health.updateOne({ _id: h.id }, { $set: { workspaceId: h.workspaceId, endpointId: h.endpointId, lastSuccessAt: now, failingSince: null } }, { upsert: true });
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

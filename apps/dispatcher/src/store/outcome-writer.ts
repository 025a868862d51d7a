// Records attempt outcomes in groups, as inserts only. Per attempt: the attempt document, plus a
// `delivered` document on success or a `failed` one when the delivery ends without success; the
// endpoint's health when it changes. FerretDB serialises writes and its updates scan the
// collection (~38 ms each at 20,000 documents), while grouped inserts are cheap (~25,000
// documents/s), so outcomes that complete together are written together. Every insert ignores
// "already there", so a group is safe to write again after a transient error, and record()
// resolves only once its group is durable (callers keep their at-least-once ordering).
import { storedAttempt, type AttemptDoc, type DeliveredDoc, type DispatcherModels, type FailedDoc } from './models';
import { insertIntoBuckets } from './insert';

/** Endpoint health is refreshed at most this often per replica while an endpoint keeps succeeding. */
const HEALTH_REFRESH_MS = 30_000;

export interface OutcomeRecord {
  /** The attempt made, or undefined when none was (endpoint gone before the attempt). */
  attempt?: AttemptDoc;
  delivered?: DeliveredDoc;
  failed?: FailedDoc;
  /** Endpoint to mark healthy ("workspace|endpoint"), on success. */
  healthyEndpoint?: { id: string; workspaceId: string; endpointId: string };
}

export interface Recorded {
  /**
   * False when an attempt with the same delivery and attempt number was there already: another
   * chain's (a record read again after a crash), or this one's own insert written before a
   * transient error. record() then looks at that attempt before it schedules a retry.
   */
  attemptNew: boolean;
}

interface Pending {
  outcome: OutcomeRecord;
  resolve: (r: Recorded) => void;
  reject: (err: unknown) => void;
}

export class OutcomeWriter {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Endpoints whose health this writer marked healthy, until when that is trusted. */
  private readonly healthyUntil = new Map<string, number>();

  constructor(
    private readonly models: Pick<DispatcherModels, 'attempts' | 'delivered' | 'failed' | 'health'>,
    private readonly now: () => number = Date.now,
    /** Longest an outcome waits for companions. Default 2 ms: far below one attempt's duration. */
    private readonly lingerMs = 2,
    /** Largest group; more starts another. */
    private readonly maxGroup = 500,
  ) {}

  record(outcome: OutcomeRecord): Promise<Recorded> {
    return new Promise((resolve, reject) => {
      this.queue.push({ outcome, resolve, reject });
      this.kick(this.queue.length >= this.maxGroup ? 0 : this.lingerMs);
    });
  }

  /** A failure was recorded for this endpoint: its next success writes health again. */
  forgetHealthy(id: string): void {
    this.healthyUntil.delete(id);
  }

  private kick(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // One group at a time: FerretDB serialises writes anyway, and concurrent ones only collide.
      this.flushing = this.flushing.then(() => this.flush());
    }, delayMs);
  }

  private async flush(): Promise<void> {
    const group = this.queue.splice(0, this.maxGroup);
    if (this.queue.length > 0) this.kick(0);
    if (group.length === 0) return;
    try {
      const newAttempts = await withTransientRetry(() => this.write(group.map((p) => p.outcome)));
      for (const p of group) p.resolve({ attemptNew: !p.outcome.attempt || newAttempts.has(p.outcome.attempt._id) });
    } catch (err) {
      for (const p of group) p.reject(err);
    }
  }

  /** Returns the ids of the attempts this write inserted. */
  private async write(outcomes: OutcomeRecord[]): Promise<Set<string>> {
    const now = this.now();
    const attempts = outcomes.flatMap((o) => (o.attempt ? [o.attempt] : []));
    // "Already there" is another chain's attempt with the same number, or our own insert written
    // before a transient error made us try again: both answer "not new", and record() then reads
    // the attempt recorded first whenever it matters (the chain has a retry to schedule). Telling
    // them apart here took a lookup per collision inside the one flush in progress, and on
    // FerretDB each lookup scans its bucket: ~270 collisions after a SIGKILL in the backlog's
    // drain held every outcome behind them for minutes (session 5).
    const inserted = await insertIntoBuckets(this.models.attempts, attempts.map(storedAttempt), (a) => a.eventCreatedAt);
    await insertIntoBuckets(
      this.models.delivered,
      outcomes.flatMap((o) => (o.delivered ? [o.delivered] : [])),
      (d) => d.eventCreatedAt,
    );
    await insertIntoBuckets(
      this.models.failed,
      outcomes.flatMap((o) => (o.failed ? [o.failed] : [])),
      (f) => f.eventCreatedAt,
    );
    const healthy = new Map(outcomes.flatMap((o) => (o.healthyEndpoint ? [[o.healthyEndpoint.id, o.healthyEndpoint] as const] : [])));
    for (const h of healthy.values()) {
      if ((this.healthyUntil.get(h.id) ?? 0) > now) continue;
      // One small document per endpoint (the collection is as large as the endpoint count).
      await this.models.health.updateOne({ _id: h.id }, { $set: { workspaceId: h.workspaceId, endpointId: h.endpointId, lastSuccessAt: new Date(now), failingSince: null } }, { upsert: true });
      this.healthyUntil.set(h.id, now + HEALTH_REFRESH_MS);
    }
    return inserted;
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

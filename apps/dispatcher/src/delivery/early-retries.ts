// Retries of failed probes, remembered so they can run as soon as their endpoint answers again.
//
// While an endpoint's circuit is open, its waiting deliveries are parked or postponed with their
// attempt count unchanged, and only a probe spends an attempt. A failed probe's retry goes to
// its tier at its backoff, which on a production schedule is minutes to hours: once the endpoint
// answered, the rest of the backlog went through within seconds, and the deliveries that had
// been probes (one a second per replica for the whole outage) arrived hours after it.
//
// So the engine marks such a retry `verify` on its tier (it is dropped there if the delivery
// succeeded meanwhile) and remembers it here; when the endpoint answers, each remembered retry
// still far from due is attempted at once, as an early copy. The tier record stays the durable
// chain: the copy holds no record, is never handed to a tier, and if it fails its own retry is
// not scheduled (the tier record's attempt carries the delivery on). A crash loses only the
// memory: the retries then come at their backoff, as before.

/** What is remembered of a retry: when its tier record is due. */
export interface DueTask {
  dueAt: number;
}

export class EarlyRetries<T extends DueTask> {
  private readonly byEndpoint = new Map<string, T[]>();
  private count = 0;

  constructor(
    /** Most retries remembered at once on this replica; beyond it a retry waits for its backoff. */
    readonly capacity: number,
  ) {}

  get size(): number {
    return this.count;
  }

  /** Remembers a retry produced to its tier for this endpoint; false when there is no room. */
  remember(endpointKey: string, task: T): boolean {
    if (this.count >= this.capacity) return false;
    const line = this.byEndpoint.get(endpointKey);
    if (line) line.push(task);
    else this.byEndpoint.set(endpointKey, [task]);
    this.count++;
    return true;
  }

  /**
   * Takes this endpoint's remembered retries that are due later than `now + leadMs` (the ones
   * due sooner come from their tier anyway), oldest first, and forgets the rest.
   */
  take(endpointKey: string, now: number, leadMs: number): T[] {
    const line = this.byEndpoint.get(endpointKey);
    if (!line) return [];
    this.byEndpoint.delete(endpointKey);
    this.count -= line.length;
    return line.filter((t) => t.dueAt > now + leadMs);
  }

  /** Forgets this endpoint's retries (it was deleted or disabled: they fail from their tier). */
  forget(endpointKey: string): void {
    this.count -= this.byEndpoint.get(endpointKey)?.length ?? 0;
    this.byEndpoint.delete(endpointKey);
  }

  /** Forgets every retry due by `now`: its tier record has come due, there is nothing to advance. */
  sweep(now: number): void {
    for (const [endpoint, line] of this.byEndpoint) {
      const keep = line.filter((t) => t.dueAt > now);
      if (keep.length === line.length) continue;
      this.count -= line.length - keep.length;
      if (keep.length === 0) this.byEndpoint.delete(endpoint);
      else this.byEndpoint.set(endpoint, keep);
    }
  }
}

// Tasks of endpoints whose circuit is open, parked in memory until the endpoint answers again.
//
// Without it a dead endpoint's retries cycled through the shortest tier: every 5-15 s each of its
// waiting tasks was fetched, decoded, encoded and produced again (10,000 tasks in bursts beside the
// healthy tenants' deliveries: p99 at 2.9 × quiet in the isolation bench), and a recovered
// endpoint's backlog came due spread over that window (drain ~640/s, a quarter of the sustained
// rate). A parked task is read once and costs nothing while it waits; when a probe succeeds the
// whole park is fed to the work queue at the endpoint's own pace.
//
// A parked task is not settled: its tier record's offset stays uncommitted, so a crash reads it
// again (at-least-once) and the engine bounds how long anything stays here (`maxAgeMs`, then it
// goes back to a tier as before). The park is bounded in count (`capacity`) and by the
// partitions this replica still owns (a revoked partition's parked tasks belong to its new owner).

export interface Parkable {
  endpointKey: string;
  /** One attempt of one delivery: a task parked twice is parked once. */
  key: string;
  /** Tier partition the task's record came from (`topic/partition`). */
  source?: string;
}

export class Parking<T extends Parkable> {
  private readonly byEndpoint = new Map<string, { job: T; at: number }[]>();
  private readonly keys = new Set<string>();

  constructor(
    /** Most tasks parked at once on this replica; beyond it the engine postpones to a tier. */
    readonly capacity: number,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  hasEndpoint(endpointKey: string): boolean {
    return this.byEndpoint.has(endpointKey);
  }

  /** Endpoints with parked tasks. */
  endpoints(): string[] {
    return [...this.byEndpoint.keys()];
  }

  /** False when the park is full or the task is parked already (the caller decides what else to do). */
  park(job: T, now: number): boolean {
    if (this.keys.size >= this.capacity || this.keys.has(job.key)) return false;
    const list = this.byEndpoint.get(job.endpointKey);
    if (list) list.push({ job, at: now });
    else this.byEndpoint.set(job.endpointKey, [{ job, at: now }]);
    this.keys.add(job.key);
    return true;
  }

  /** Takes the oldest parked task of an endpoint (a probe), if any. */
  takeOne(endpointKey: string): T | undefined {
    const list = this.byEndpoint.get(endpointKey);
    const first = list?.shift();
    if (!first) return undefined;
    if (list!.length === 0) this.byEndpoint.delete(endpointKey);
    this.keys.delete(first.job.key);
    return first.job;
  }

  /** Takes every task parked longer than `maxAgeMs` (oldest first per endpoint). */
  takeOlderThan(maxAgeMs: number, now: number): T[] {
    return this.takeWhere((e) => now - e.at > maxAgeMs);
  }

  /** Takes the tasks whose record came from a partition not in `owned` (a rebalance moved it away). */
  takeNotIn(owned: Set<string>): T[] {
    return this.takeWhere((e) => e.job.source !== undefined && !owned.has(e.job.source));
  }

  takeAll(): T[] {
    return this.takeWhere(() => true);
  }

  private takeWhere(match: (e: { job: T; at: number }) => boolean): T[] {
    const out: T[] = [];
    for (const [endpoint, list] of this.byEndpoint) {
      const keep: { job: T; at: number }[] = [];
      for (const e of list) {
        if (!match(e)) keep.push(e);
        else {
          out.push(e.job);
          this.keys.delete(e.job.key);
        }
      }
      if (keep.length === 0) this.byEndpoint.delete(endpoint);
      else if (keep.length !== list.length) this.byEndpoint.set(endpoint, keep);
    }
    return out;
  }
}

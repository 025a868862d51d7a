// Tasks of endpoints whose circuit is open, parked in memory until the endpoint answers again.
//
// Without it a dead endpoint's retries cycled through the shortest tier: every 5-15 s each of its
// waiting tasks was fetched, decoded, encoded and produced again, in bursts beside the healthy
// tenants' deliveries, and a recovered endpoint's backlog came due spread over that window (the
// bench's recovery drain was ~640/s, a quarter of the sustained rate). A parked task is read once
// and costs nothing while it waits; when a probe succeeds the whole park is fed to the work
// queue at the endpoint's own pace.
//
// A parked task is not settled: its tier record's offset stays uncommitted, so a crash reads it
// again (at-least-once), and the engine bounds how long anything stays here (then it goes back
// to a tier as before). The park is bounded in count (`capacity`) and by the partitions this
// replica still owns (a revoked partition's parked tasks belong to its new owner).

export interface Parkable {
  endpointKey: string;
  /** One attempt of one delivery: a task parked twice is parked once. */
  key: string;
  /** Tier partition the task's record came from (`topic/partition`). */
  source?: string;
}

interface Entry<T> {
  job: T;
  at: number;
}

/** One endpoint's parked tasks, oldest first; `head` skips those taken (no O(n) shift per task). */
interface Line<T> {
  entries: Entry<T>[];
  head: number;
}

export class Parking<T extends Parkable> {
  private readonly byEndpoint = new Map<string, Line<T>>();
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
    const line = this.byEndpoint.get(job.endpointKey);
    if (line) line.entries.push({ job, at: now });
    else this.byEndpoint.set(job.endpointKey, { entries: [{ job, at: now }], head: 0 });
    this.keys.add(job.key);
    return true;
  }

  /** Takes the oldest parked task of an endpoint (a probe, or the next to feed), if any. */
  takeOne(endpointKey: string): T | undefined {
    const line = this.byEndpoint.get(endpointKey);
    if (!line) return undefined;
    const first = line.entries[line.head++]!;
    if (line.head === line.entries.length) this.byEndpoint.delete(endpointKey);
    else if (line.head >= 1_024 && line.head * 2 >= line.entries.length) {
      line.entries = line.entries.slice(line.head);
      line.head = 0;
    }
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

  private takeWhere(match: (e: Entry<T>) => boolean): T[] {
    const out: T[] = [];
    for (const [endpoint, line] of this.byEndpoint) {
      const keep: Entry<T>[] = [];
      for (let i = line.head; i < line.entries.length; i++) {
        const e = line.entries[i]!;
        if (!match(e)) keep.push(e);
        else {
          out.push(e.job);
          this.keys.delete(e.job.key);
        }
      }
      if (keep.length === 0) this.byEndpoint.delete(endpoint);
      else if (keep.length !== line.entries.length - line.head) this.byEndpoint.set(endpoint, { entries: keep, head: 0 });
    }
    return out;
  }
}

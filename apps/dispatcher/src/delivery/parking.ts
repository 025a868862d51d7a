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
// to a tier as before). The park is bounded in count (`capacity`), in payload bytes (`maxBytes`:
// 20,000 tasks of 256 KiB payloads would be 5 GiB) and by the partitions this replica still owns
// (a revoked partition's parked tasks belong to its new owner).

export interface Parkable {
  endpointKey: string;
  /** The park holds one task per delivery: its latest attempt. */
  deliveryId: string;
  task: { attemptsMade: number };
  /** Tier partition the task's record came from (`topic/partition`). */
  source?: string;
  /** Memory the task holds (its payload and some), counted against `maxBytes`. */
  bytes: number;
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

/**
 * What park() did. `covered`: a task of the same delivery at the same or a later attempt is parked
 * (this one is a record read again, or superseded); `full`: no room. `superseded`: the parked task
 * this one replaced, an earlier attempt of the same delivery. Covered and superseded tasks are
 * settled by the caller: the parked one holds their place.
 */
export type Parked<T> = { parked: true; superseded?: T } | { parked: false; why: 'covered' | 'full' };

export class Parking<T extends Parkable> {
  private readonly byEndpoint = new Map<string, Line<T>>();
  private readonly byDelivery = new Map<string, Entry<T>>();
  private heldBytes = 0;

  constructor(
    /** Most tasks parked at once on this replica; beyond it the engine postpones to a tier. */
    readonly capacity: number,
    /** Most payload bytes parked at once on this replica; beyond it likewise. */
    readonly maxBytes = Infinity,
  ) {}

  get size(): number {
    return this.byDelivery.size;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** A task of this delivery at this attempt or a later one is parked. */
  covers(job: Parkable): boolean {
    const parked = this.byDelivery.get(job.deliveryId);
    return parked !== undefined && parked.job.task.attemptsMade >= job.task.attemptsMade;
  }

  hasEndpoint(endpointKey: string): boolean {
    return this.byEndpoint.has(endpointKey);
  }

  /** Endpoints with parked tasks. */
  endpoints(): string[] {
    return [...this.byEndpoint.keys()];
  }

  /**
   * Parks a task, once per delivery. Records of one delivery's earlier attempts are read again
   * after a rebalance (the partition's commit point waits for the oldest parked task): a dead
   * endpoint's probe made a new record every second, and the replica that took the partition
   * parked each of them and delivered the same event five times once the endpoint answered.
   */
  park(job: T, now: number): Parked<T> {
    const parked = this.byDelivery.get(job.deliveryId);
    if (parked) {
      if (parked.job.task.attemptsMade >= job.task.attemptsMade) return { parked: false, why: 'covered' };
      // Its place in the line, and its age: the line's order stays, and the newer record is held
      // no longer than the older one would have been.
      const superseded = parked.job;
      parked.job = job;
      this.heldBytes += job.bytes - superseded.bytes;
      return { parked: true, superseded };
    }
    if (this.byDelivery.size >= this.capacity || this.heldBytes + job.bytes > this.maxBytes) return { parked: false, why: 'full' };
    const entry = { job, at: now };
    this.heldBytes += job.bytes;
    const line = this.byEndpoint.get(job.endpointKey);
    if (line) line.entries.push(entry);
    else this.byEndpoint.set(job.endpointKey, { entries: [entry], head: 0 });
    this.byDelivery.set(job.deliveryId, entry);
    return { parked: true };
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
    this.byDelivery.delete(first.job.deliveryId);
    this.heldBytes -= first.job.bytes;
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
          this.byDelivery.delete(e.job.deliveryId);
          this.heldBytes -= e.job.bytes;
        }
      }
      if (keep.length === 0) this.byEndpoint.delete(endpoint);
      else if (keep.length !== line.entries.length - line.head) this.byEndpoint.set(endpoint, { entries: keep, head: 0 });
    }
    return out;
  }
}

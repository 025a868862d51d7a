// Which Kafka offsets may be committed. A record's offset is done once every delivery it produced
// is settled: attempted and its outcome durably written, or written to the database as pending
// work (spilled). The offset committed for a partition is one past the longest run of done
// records from the front, so a crash at any point redoes work (duplicates possible, and
// deduplicated as far as the database can tell) but never loses it.
//
// Records are registered in offset order per partition (kafkajs hands each partition's batches to
// one eachBatch at a time). A record fetched again after a rebalance kept the partition here is
// recognised by its offset and not processed twice.

export interface CommitPoint {
  topic: string;
  partition: number;
  /** The offset to commit: the next record to read. */
  offset: string;
}

/** One registered record: hold() once per delivery it produced, release() once each is settled. */
export interface RecordTicket {
  hold(): void;
  release(): void;
}

interface Track {
  topic: string;
  partition: number;
  /** Registered records not yet passed by the commit point, in offset order, with deliveries still unsettled. */
  open: { offset: bigint; unsettled: number }[];
  /** Highest offset registered (−1 before the first). */
  last: bigint;
  /** One past the last record whose deliveries, and those of every record before it, are settled. */
  passed: bigint;
  /** Offset last committed (next to read), or −1. */
  committed: bigint;
}

export class OffsetTracker {
  private readonly tracks = new Map<string, Track>();
  /** Partitions assigned to this replica, with when it got each (kept across rebalances that leave it here). */
  private assigned = new Map<string, number>();

  /** True when this record was already registered (fetched again after a rebalance kept the partition here). */
  seen(topic: string, partition: number, offset: string): boolean {
    const t = this.tracks.get(key(topic, partition));
    return t !== undefined && BigInt(offset) <= t.last;
  }

  /** Registers a record; its offset becomes committable once every hold() is matched by a release(). */
  register(topic: string, partition: number, offset: string): RecordTicket {
    const k = key(topic, partition);
    let t = this.tracks.get(k);
    if (!t) this.tracks.set(k, (t = { topic, partition, open: [], last: -1n, passed: -1n, committed: -1n }));
    const o = BigInt(offset);
    if (o <= t.last) throw new Error(`offset ${offset} of ${k} registered twice (last ${t.last})`);
    t.last = o;
    const entry = { offset: o, unsettled: 0 };
    t.open.push(entry);
    let held = 0;
    return {
      hold: () => {
        held++;
        entry.unsettled++;
      },
      release: () => {
        if (held === 0) return;
        held--;
        entry.unsettled--;
      },
    };
  }

  /** Partitions whose commit point moved past the last commit, with that point. */
  due(): CommitPoint[] {
    const out: CommitPoint[] = [];
    for (const t of this.tracks.values()) {
      while (t.open.length > 0 && t.open[0]!.unsettled === 0) t.passed = t.open.shift()!.offset + 1n;
      if (t.passed > t.committed) out.push({ topic: t.topic, partition: t.partition, offset: t.passed.toString() });
    }
    return out;
  }

  committed(point: CommitPoint): void {
    const t = this.tracks.get(key(point.topic, point.partition));
    if (t && BigInt(point.offset) > t.committed) t.committed = BigInt(point.offset);
  }

  /** Unsettled deliveries over all partitions (graceful stop waits for zero). */
  get unsettled(): number {
    let n = 0;
    for (const t of this.tracks.values()) for (const e of t.open) n += e.unsettled;
    return n;
  }

  /**
   * Forgets partitions no longer assigned to this replica (after a rebalance): their new owner
   * commits them. Deliveries already running for them still finish and are recorded.
   */
  retain(assigned: Record<string, number[]>, now = Date.now()): void {
    for (const [k, t] of this.tracks) if (!(assigned[t.topic] ?? []).includes(t.partition)) this.tracks.delete(k);
    const next = new Map<string, number>();
    for (const [topic, partitions] of Object.entries(assigned)) for (const p of partitions) next.set(key(topic, p), this.assigned.get(key(topic, p)) ?? now);
    this.assigned = next;
  }

  /**
   * When this replica was given the partition: records of it due before then may have been taken
   * (and attempted) by the replica that had it. Undefined for a partition never assigned here.
   */
  assignedAt(topic: string, partition: number): number | undefined {
    return this.assigned.get(key(topic, partition));
  }
}

const key = (topic: string, partition: number): string => `${topic}/${partition}`;

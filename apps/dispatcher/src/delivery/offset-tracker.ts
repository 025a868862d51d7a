// Which Kafka offsets may be committed. A record's offset is done once every delivery it produced
// is settled: attempted and its outcome durably written, or written to the database as pending
// work (spilled). The offset committed for a partition is one past the longest run of done
// records from the front, so a crash at any point redoes work (duplicates possible, and
// deduplicated as far as the database can tell) but never loses it.
//
// Records are registered in offset order per partition (kafkajs hands each partition's batches to
// one eachBatch at a time). A record fetched again after a rebalance kept the partition here is
// recognised by its offset and not processed twice.
//
// Records settled past the commit point travel with the commit, as its metadata (`s1:` ranges,
// encodeSettled): when the replica dies, the partition's next owner reads them back (inherit)
// and takes those records as settled instead of attempting them again. Without this, every
// record behind one still unsettled (a parked task, a slow endpoint's attempt) was redone after
// a SIGKILL: 126 to 1,156 duplicate deliveries in the 20,000 backlog's drain (session 9).

export interface CommitPoint {
  topic: string;
  partition: number;
  /** The offset to commit: the next record to read. */
  offset: string;
  /** The records past `offset` settled already (encodeSettled), or null: the commit's metadata. */
  metadata: string | null;
}

/** Longest commit metadata written. Brokers refuse more than `offset.metadata.max.bytes` (4,096 by default). */
export const MAX_METADATA_CHARS = 2_000;
const FORMAT = 's1:';

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
  /** The metadata committed with it. */
  committedMetadata: string | null;
}

/** Offsets past the commit point that a partition's previous owner settled. */
export type SettledElsewhere = (offset: string) => boolean;
const NONE: SettledElsewhere = () => false;

export class OffsetTracker {
  private readonly tracks = new Map<string, Track>();
  /** Partitions assigned to this replica, with when it got each (kept across rebalances that leave it here). */
  private assigned = new Map<string, number>();
  /** Per partition assigned lately: what its previous owner settled past its commit point (inherit). */
  private readonly inherited = new Map<string, Promise<SettledElsewhere>>();

  /** True when this record was already registered (fetched again after a rebalance kept the partition here). */
  seen(topic: string, partition: number, offset: string): boolean {
    const t = this.tracks.get(key(topic, partition));
    return t !== undefined && BigInt(offset) <= t.last;
  }

  /** Registers a record; its offset becomes committable once every hold() is matched by a release(). */
  register(topic: string, partition: number, offset: string): RecordTicket {
    const k = key(topic, partition);
    let t = this.tracks.get(k);
    const o = BigInt(offset);
    // Records before the first one fetched were committed already (or are gone from the log).
    if (!t) this.tracks.set(k, (t = { topic, partition, open: [], last: -1n, passed: o, committed: -1n, committedMetadata: null }));
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

  /** Partitions whose commit point, or the records settled past it, changed since the last commit. */
  due(): CommitPoint[] {
    const out: CommitPoint[] = [];
    for (const t of this.tracks.values()) {
      while (t.open.length > 0 && t.open[0]!.unsettled === 0) t.passed = t.open.shift()!.offset + 1n;
      const metadata = encodeSettled(t.passed, t.open);
      if (t.passed > t.committed || (t.passed === t.committed && metadata !== t.committedMetadata)) out.push({ topic: t.topic, partition: t.partition, offset: t.passed.toString(), metadata });
    }
    return out;
  }

  committed(point: CommitPoint): void {
    const t = this.tracks.get(key(point.topic, point.partition));
    const o = BigInt(point.offset);
    if (!t || o < t.committed) return;
    t.committed = o;
    t.committedMetadata = point.metadata;
  }

  /**
   * What the previous owner of newly assigned partitions committed (`found`: by `topic/partition`,
   * the committed offset and its metadata). Intake of those partitions waits for it
   * (settledElsewhere); a lookup that fails leaves them without (their records are all taken).
   */
  inherit(partitions: { topic: string; partition: number }[], found: Promise<Map<string, { offset: string; metadata: string | null }>>): void {
    const all = found.catch(() => new Map<string, { offset: string; metadata: string | null }>());
    for (const { topic, partition } of partitions) {
      const k = key(topic, partition);
      this.inherited.set(
        k,
        all.then((m) => {
          const c = m.get(k);
          const ranges = c ? decodeSettled(BigInt(c.offset), c.metadata) : [];
          return ranges.length === 0 ? NONE : (offset: string) => inRanges(ranges, BigInt(offset));
        }),
      );
    }
  }

  /** Which records of this partition its previous owner settled already (none when nothing was inherited). */
  settledElsewhere(topic: string, partition: number): Promise<SettledElsewhere> | SettledElsewhere {
    return this.inherited.get(key(topic, partition)) ?? NONE;
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
  retain(assigned: Record<string, number[]>, now = Date.now()): { topic: string; partition: number }[] {
    for (const [k, t] of this.tracks) if (!(assigned[t.topic] ?? []).includes(t.partition)) this.tracks.delete(k);
    const next = new Map<string, number>();
    const added: { topic: string; partition: number }[] = [];
    for (const [topic, partitions] of Object.entries(assigned)) {
      for (const p of partitions) {
        const at = this.assigned.get(key(topic, p));
        if (at === undefined) added.push({ topic, partition: p });
        next.set(key(topic, p), at ?? now);
      }
    }
    for (const k of this.inherited.keys()) if (!next.has(k)) this.inherited.delete(k);
    this.assigned = next;
    return added;
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

/**
 * The records settled past `from` (the commit point), as commit metadata: `s1:` and ranges of
 * consecutive settled offsets, each `gap.length` in base 36, the gap counted from the end of the
 * range before (from `from` for the first). Null when there are none. Ranges that would make it
 * longer than MAX_METADATA_CHARS are left out: their records are attempted again by the next owner.
 */
export function encodeSettled(from: bigint, open: readonly { offset: bigint; unsettled: number }[]): string | null {
  const parts: string[] = [];
  let length = FORMAT.length;
  let previousEnd = from;
  for (let i = 0; i < open.length; i++) {
    if (open[i]!.unsettled !== 0) continue;
    const start = open[i]!.offset;
    while (i + 1 < open.length && open[i + 1]!.unsettled === 0 && open[i + 1]!.offset === open[i]!.offset + 1n) i++;
    const end = open[i]!.offset + 1n;
    const part = `${(start - previousEnd).toString(36)}.${(end - start).toString(36)}`;
    if (length + part.length + 1 > MAX_METADATA_CHARS) break;
    parts.push(part);
    length += part.length + 1;
    previousEnd = end;
  }
  return parts.length === 0 ? null : FORMAT + parts.join(',');
}

/** The ranges [start, end) encodeSettled wrote; none for metadata it did not write (or that does not parse). */
export function decodeSettled(from: bigint, metadata: string | null | undefined): [bigint, bigint][] {
  if (!metadata?.startsWith(FORMAT)) return [];
  const ranges: [bigint, bigint][] = [];
  let previousEnd = from;
  for (const part of metadata.slice(FORMAT.length).split(',')) {
    const m = /^([0-9a-z]{1,11})\.([0-9a-z]{1,11})$/.exec(part);
    if (!m) return [];
    const start = previousEnd + BigInt(parseInt(m[1]!, 36));
    const end = start + BigInt(parseInt(m[2]!, 36));
    if (end <= start) return [];
    ranges.push([start, end]);
    previousEnd = end;
  }
  return ranges;
}

function inRanges(ranges: readonly [bigint, bigint][], o: bigint): boolean {
  for (const [start, end] of ranges) {
    if (o < start) return false;
    if (o < end) return true;
  }
  return false;
}

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
// record behind one still unsettled (a slow endpoint's attempt, up to ATTEMPT_TIMEOUT_MS; a
// parked task, up to a minute) was redone after a SIGKILL.

export interface CommitPoint {
  topic: string;
  partition: number;
  /** The offset to commit: the next record to read. */
  offset: string;
  /** The records past `offset` settled already (encodeSettled), or null: the commit's metadata. */
  metadata: string | null;
}

/** Longest commit metadata written at first. Brokers refuse more than `offset.metadata.max.bytes` (4,096 by default); a broker that refuses it halves this (shrinkMetadata). */
export const MAX_METADATA_CHARS = 2_000;
/** Records past the commit point looked at per encoding at most (a head held for a minute can have 100,000 behind it). */
export const MAX_WALK = 50_000;
/** A partition's point is committed again after this long even if unchanged: a late commit of its previous owner may have overwritten it. */
export const RECOMMIT_MS = 10_000;
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
  /** Offset last committed (next to read), or −1 (commit again). */
  committed: bigint;
  /** The metadata committed with it. */
  committedMetadata: string | null;
  committedAt: number;
  /** Registrations and releases so far, and how many there were when `encoded` was made. */
  changes: number;
  encoded?: { changes: number; passed: bigint; limit: number; metadata: string | null };
}

/** What a partition's previous owner settled past its commit point: absolute ranges [start, end). */
interface Inheritance {
  pending: Promise<void> | undefined;
  ranges: [bigint, bigint][];
}

/** Offsets past the commit point that a partition's previous owner settled. */
export type SettledElsewhere = (offset: string) => boolean;
const NONE: SettledElsewhere = () => false;

export class OffsetTracker {
  private readonly tracks = new Map<string, Track>();
  /** Partitions assigned to this replica, with when it got each (kept across rebalances that leave it here). */
  private assigned = new Map<string, number>();
  /** Per partition assigned lately: what its previous owner settled past its commit point (inherit). */
  private readonly inherited = new Map<string, Inheritance>();
  private metadataLimit = MAX_METADATA_CHARS;

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
    if (!t) this.tracks.set(k, (t = { topic, partition, open: [], last: -1n, passed: o, committed: -1n, committedMetadata: null, committedAt: 0, changes: 0 }));
    if (o <= t.last) throw new Error(`offset ${offset} of ${k} registered twice (last ${t.last})`);
    t.last = o;
    t.changes++;
    const entry = { offset: o, unsettled: 0 };
    t.open.push(entry);
    let held = 0;
    const track = t;
    return {
      hold: () => {
        held++;
        entry.unsettled++;
      },
      release: () => {
        if (held === 0) return;
        held--;
        entry.unsettled--;
        track.changes++;
      },
    };
  }

  /**
   * Partitions to commit: their commit point or the records settled past it changed since the
   * last commit (or RECOMMIT_MS went by). A partition whose previous owner's commit is still
   * being read is not committed yet: that would overwrite what it settled.
   */
  due(now = Date.now()): CommitPoint[] {
    const out: CommitPoint[] = [];
    for (const [k, t] of this.tracks) {
      const inherited = this.inherited.get(k);
      if (inherited?.pending) continue;
      while (t.open.length > 0 && t.open[0]!.unsettled === 0) t.passed = t.open.shift()!.offset + 1n;
      let e = t.encoded;
      if (!e || e.changes !== t.changes || e.passed !== t.passed || e.limit !== this.metadataLimit) {
        // What the previous owner settled beyond the records registered here is claimed again, so
        // that a next owner still has it.
        const beyond = inherited ? inherited.ranges.filter(([, end]) => end > t.last + 1n).map(([start, end]): [bigint, bigint] => [start > t.last ? start : t.last + 1n, end]) : [];
        if (inherited && beyond.length === 0) inherited.ranges = [];
        e = t.encoded = { changes: t.changes, passed: t.passed, limit: this.metadataLimit, metadata: encodeSettled(t.passed, t.open, beyond, this.metadataLimit) };
      }
      if (t.passed > t.committed || e.metadata !== t.committedMetadata || now - t.committedAt >= RECOMMIT_MS) {
        out.push({ topic: t.topic, partition: t.partition, offset: t.passed.toString(), metadata: e.metadata });
      }
    }
    return out;
  }

  committed(point: CommitPoint, now = Date.now()): void {
    const t = this.tracks.get(key(point.topic, point.partition));
    const o = BigInt(point.offset);
    if (!t || o < t.committed) return;
    t.committed = o;
    t.committedMetadata = point.metadata;
    t.committedAt = now;
  }

  /** The broker refused the metadata as too large (`offset.metadata.max.bytes` set low): write at most half as much from now on. */
  shrinkMetadata(): void {
    this.metadataLimit = Math.floor(this.metadataLimit / 2);
  }

  /**
   * What the previous owner of newly assigned partitions committed (`found`: by `topic/partition`,
   * the committed offset and its metadata). Intake of those partitions waits for it
   * (settledElsewhere), and so do their commits; a lookup that fails leaves them without (their
   * records are all taken, as before this was kept).
   */
  inherit(partitions: { topic: string; partition: number }[], found: Promise<Map<string, { offset: string; metadata: string | null }>>): void {
    const entries = partitions.map(({ topic, partition }) => {
      const k = key(topic, partition);
      const inheritance: Inheritance = { pending: undefined, ranges: [] };
      this.inherited.set(k, inheritance);
      return [k, inheritance] as const;
    });
    const done = found.then(
      (m) => {
        for (const [k, inheritance] of entries) {
          const c = m.get(k);
          inheritance.ranges = c ? decodeSettled(BigInt(c.offset), c.metadata) : [];
        }
      },
      () => undefined,
    );
    for (const [, inheritance] of entries) inheritance.pending = done.then(() => (inheritance.pending = undefined));
  }

  /** Which records of this partition its previous owner settled already (none when nothing was inherited); a promise while that is being read. */
  settledElsewhere(topic: string, partition: number): Promise<SettledElsewhere> | SettledElsewhere {
    const inheritance = this.inherited.get(key(topic, partition));
    if (!inheritance) return NONE;
    const check: SettledElsewhere = (offset) => inRanges(inheritance.ranges, BigInt(offset));
    return inheritance.pending ? inheritance.pending.then(() => check) : check;
  }

  /** Unsettled deliveries over all partitions (graceful stop waits for zero). */
  get unsettled(): number {
    let n = 0;
    for (const t of this.tracks.values()) for (const e of t.open) n += e.unsettled;
    return n;
  }

  /**
   * Forgets partitions no longer assigned to this replica (after a rebalance): their new owner
   * commits them. Deliveries already running for them still finish and are recorded. Returns the
   * partitions new here (to inherit).
   */
  retain(assigned: Record<string, number[]>, now = Date.now()): { topic: string; partition: number }[] {
    for (const [k, t] of this.tracks) {
      if (!(assigned[t.topic] ?? []).includes(t.partition)) this.tracks.delete(k);
      // Committed again in this generation: a commit kafkajs dropped (its runner stopping) or one
      // of another member's that landed late must not stand.
      else t.committed = -1n;
    }
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
 * range before (from `from` for the first), then `beyond` (ranges past the registered records, in
 * order). Null when there are none. Ranges that would make it longer than `limit`, and records
 * past the first MAX_WALK, are left out: their records are attempted again by a next owner.
 */
export function encodeSettled(from: bigint, open: readonly { offset: bigint; unsettled: number }[], beyond: readonly [bigint, bigint][] = [], limit = MAX_METADATA_CHARS): string | null {
  const parts: string[] = [];
  let length = FORMAT.length;
  // The last range written: where it starts, where it ends, and where its gap is counted from.
  let lastStart = from;
  let previousEnd = from;
  let gapFrom = from;
  const add = (start: bigint, end: bigint): boolean => {
    // A range that goes on where the one before ends is that one, longer.
    const joined = parts.length > 0 && start === previousEnd;
    const begin = joined ? lastStart : start;
    const base = joined ? gapFrom : previousEnd;
    const part = `${(begin - base).toString(36)}.${(end - begin).toString(36)}`;
    const grown = length - (joined ? parts[parts.length - 1]!.length + 1 : 0) + part.length + 1;
    if (grown > limit) return false;
    if (joined) parts[parts.length - 1] = part;
    else parts.push(part);
    length = grown;
    gapFrom = base;
    lastStart = begin;
    previousEnd = end;
    return true;
  };
  const n = Math.min(open.length, MAX_WALK);
  let full = false;
  for (let i = 0; i < n && !full; i++) {
    if (open[i]!.unsettled !== 0) continue;
    const start = open[i]!.offset;
    while (i + 1 < n && open[i + 1]!.unsettled === 0 && open[i + 1]!.offset === open[i]!.offset + 1n) i++;
    full = !add(start, open[i]!.offset + 1n);
  }
  // Inherited ranges only follow every registered record (they start past the last one).
  if (!full && n === open.length) {
    for (const [start, end] of beyond) if (start < previousEnd || !add(start, end)) break;
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
  if (ranges.length === 0 || o >= ranges[ranges.length - 1]![1]) return false;
  for (const [start, end] of ranges) {
    if (o < start) return false;
    if (o < end) return true;
  }
  return false;
}

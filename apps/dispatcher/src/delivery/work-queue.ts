// In-process queue of deliveries. A global limit bounds work in flight; a per-endpoint limit
// keeps one slow or dead endpoint (10 s timeouts) from taking every slot, so healthy endpoints on
// the same partition keep flowing (no head-of-line blocking).
//
// Memory is bounded twice: `maxQueued` over all endpoints (producers wait: backpressure on the
// Kafka consumer) and a per-endpoint cap (push refuses; the caller waits a little for room, then
// hands the delivery to a retry tier). The second bound is what keeps a hanging endpoint with a
// backlog from filling the global queue and stalling intake for all. The per-endpoint cap is
// `maxQueuedPerEndpoint`, or half a second of what the endpoint completed in the last second if
// that is more, so a fast endpoint taking a burst keeps it in memory.
export interface WorkItem {
  endpointKey: string;
}

export interface WorkQueueLimits {
  /** Items running at once, all endpoints. */
  maxInFlight: number;
  /** Items running at once for one endpoint key. */
  maxPerEndpoint: number;
  /** Above this many queued items, waitForRoom() waits (backpressure). */
  maxQueued: number;
  /** push() refuses once one endpoint has this many items waiting (or half a second of its recent completions, if more). */
  maxQueuedPerEndpoint: number;
}

/** Completions per endpoint over the last second, in ten 100 ms buckets. */
class Throughput {
  private readonly buckets = new Map<string, { at: number; since: number; counts: number[] }>();
  constructor(private readonly now: () => number) {}

  done(key: string): void {
    const slot = Math.floor(this.now() / 100);
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = { at: slot, since: slot, counts: new Array<number>(10).fill(0) }));
    this.roll(b, slot);
    b.counts[slot % 10]!++;
  }

  /** Completions in the last second. */
  perSecond(key: string): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    this.roll(b, Math.floor(this.now() / 100));
    const n = b.counts.reduce((a, c) => a + c, 0);
    if (n === 0) this.buckets.delete(key);
    // An endpoint seen for less than a second with enough completions to tell: its rate over the
    // time seen (at least 100 ms), so a burst to a new fast endpoint is recognised at once.
    const seen = Math.min(Math.floor(this.now() / 100) - b.since + 1, 10);
    return n < 20 ? n : Math.round((n * 10) / seen);
  }

  private roll(b: { at: number; since: number; counts: number[] }, slot: number): void {
    for (let s = Math.max(b.at + 1, slot - 9); s <= slot; s++) b.counts[s % 10] = 0;
    b.at = Math.max(b.at, slot);
  }
}

export class WorkQueue<T extends WorkItem> {
  private readonly queues = new Map<string, T[]>();
  private readonly perEndpoint = new Map<string, number>();
  /** Endpoints with queued work and a free slot, in arrival order (round robin). */
  private readonly ready: string[] = [];
  private readonly readySet = new Set<string>();
  private inFlight = 0;
  private queued = 0;
  private idleWaiters: (() => void)[] = [];
  /** Waiters for room in one endpoint's queue. */
  private readonly endpointWaiters = new Map<string, (() => void)[]>();
  private roomWaiters: (() => void)[] = [];

  private readonly throughput: Throughput;

  constructor(
    private readonly limits: WorkQueueLimits,
    private readonly run: (item: T) => Promise<void>,
    now: () => number = Date.now,
  ) {
    this.throughput = new Throughput(now);
  }

  /** Items one endpoint may have waiting: the configured cap, or half a second of its recent completions. */
  capFor(key: string): number {
    return Math.max(this.limits.maxQueuedPerEndpoint, Math.min(Math.floor(this.throughput.perSecond(key) / 2), this.limits.maxQueued));
  }

  get size(): { inFlight: number; queued: number } {
    return { inFlight: this.inFlight, queued: this.queued };
  }

  /** In flight for one endpoint key (for tests and metrics). */
  inFlightFor(key: string): number {
    return this.perEndpoint.get(key) ?? 0;
  }

  /** Queues an item; false (and nothing queued) when its endpoint already has a full queue. */
  push(item: T): boolean {
    const q = this.queues.get(item.endpointKey);
    if (q && q.length >= this.capFor(item.endpointKey)) return false;
    if (q) q.push(item);
    else this.queues.set(item.endpointKey, [item]);
    this.queued++;
    this.markReady(item.endpointKey);
    this.pump();
    return true;
  }

  /** How many more items one endpoint's queue accepts. */
  roomFor(key: string): number {
    return this.capFor(key) - (this.queues.get(key)?.length ?? 0);
  }

  get hasRoom(): boolean {
    return this.queued < this.limits.maxQueued;
  }

  /** Resolves true once the queue has room, or false after `timeoutMs` (so callers can heartbeat). */
  async waitForRoom(timeoutMs = Infinity): Promise<boolean> {
    if (this.hasRoom) return true;
    let timer: NodeJS.Timeout | undefined;
    let waiter: (() => void) | undefined;
    const room = new Promise<void>((r) => {
      waiter = r;
      this.roomWaiters.push(r);
    });
    const timeout = Number.isFinite(timeoutMs) ? new Promise<void>((r) => (timer = setTimeout(r, timeoutMs))) : new Promise<void>(() => undefined);
    await Promise.race([room, timeout]);
    clearTimeout(timer);
    this.roomWaiters = this.roomWaiters.filter((w) => w !== waiter);
    return this.hasRoom;
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    while (this.inFlight > 0 || this.queued > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** Completions per second of one endpoint, over the last second. */
  rateOf(key: string): number {
    return this.throughput.perSecond(key);
  }

  /** Resolves true once one endpoint's queue has room, or false after `timeoutMs`. */
  waitForEndpointRoom(key: string, timeoutMs: number): Promise<boolean> {
    if (this.roomFor(key) > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        clearTimeout(timer);
        const list = this.endpointWaiters.get(key)?.filter((w) => w !== wake) ?? [];
        if (list.length > 0) this.endpointWaiters.set(key, list);
        else this.endpointWaiters.delete(key);
        resolve(this.roomFor(key) > 0);
      };
      timer = setTimeout(wake, Math.max(timeoutMs, 0));
      this.endpointWaiters.set(key, [...(this.endpointWaiters.get(key) ?? []), wake]);
    });
  }

  /** Removes and returns the items not yet started that match (work waiting too long goes to a retry tier). */
  removeQueued(match: (item: T) => boolean): T[] {
    const out: T[] = [];
    for (const [key, q] of this.queues) {
      const keep = q.filter((item) => !match(item));
      if (keep.length === q.length) continue;
      out.push(...q.filter(match));
      this.queued -= q.length - keep.length;
      if (keep.length > 0) this.queues.set(key, keep);
      else this.queues.delete(key);
    }
    this.wake();
    return out;
  }

  /** Removes and returns everything not yet started (graceful shutdown hands it back). */
  drainQueued(): T[] {
    const out = [...this.queues.values()].flat();
    this.queues.clear();
    this.ready.length = 0;
    this.readySet.clear();
    this.queued = 0;
    this.wake();
    return out;
  }

  private markReady(key: string): void {
    if (this.readySet.has(key)) return;
    if ((this.perEndpoint.get(key) ?? 0) >= this.limits.maxPerEndpoint) return;
    if (!this.queues.get(key)?.length) return;
    this.readySet.add(key);
    this.ready.push(key);
  }

  private pump(): void {
    while (this.inFlight < this.limits.maxInFlight && this.ready.length > 0) {
      const key = this.ready.shift()!;
      this.readySet.delete(key);
      const q = this.queues.get(key);
      const item = q?.shift();
      if (!item) continue;
      if (q!.length === 0) this.queues.delete(key);
      this.queued--;
      this.inFlight++;
      this.perEndpoint.set(key, (this.perEndpoint.get(key) ?? 0) + 1);
      this.markReady(key);
      void Promise.resolve()
        .then(() => this.run(item))
        .catch(() => undefined) // run() reports its own failures; the slot must be freed regardless
        .finally(() => {
          this.throughput.done(key);
          this.inFlight--;
          const n = (this.perEndpoint.get(key) ?? 1) - 1;
          if (n === 0) this.perEndpoint.delete(key);
          else this.perEndpoint.set(key, n);
          this.markReady(key);
          this.pump();
          this.wake();
          // After pump: the next waiting item has moved from the queue to running, which is the room.
          for (const w of this.endpointWaiters.get(key) ?? []) w();
        });
    }
    this.wake();
  }

  private wake(): void {
    if (this.queued < this.limits.maxQueued && this.roomWaiters.length > 0) for (const r of this.roomWaiters.splice(0)) r();
    if (this.inFlight === 0 && this.queued === 0 && this.idleWaiters.length > 0) for (const r of this.idleWaiters.splice(0)) r();
  }
}

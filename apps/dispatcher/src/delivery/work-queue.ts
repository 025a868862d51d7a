// In-process queue of leased deliveries. A global limit bounds work in flight; a per-endpoint
// limit keeps one slow or dead endpoint (10 s timeouts) from taking every slot, so healthy
// endpoints on the same partition keep flowing (no head-of-line blocking).
export interface WorkItem {
  endpointKey: string;
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
  private roomWaiters: (() => void)[] = [];

  constructor(
    private readonly maxInFlight: number,
    private readonly maxPerEndpoint: number,
    /** Above this many queued items, producers wait (backpressure on the Kafka consumer). */
    private readonly maxQueued: number,
    private readonly run: (item: T) => Promise<void>,
  ) {}

  get size(): { inFlight: number; queued: number } {
    return { inFlight: this.inFlight, queued: this.queued };
  }

  push(item: T): void {
    const q = this.queues.get(item.endpointKey);
    if (q) q.push(item);
    else this.queues.set(item.endpointKey, [item]);
    this.queued++;
    this.markReady(item.endpointKey);
    this.pump();
  }

  /** Resolves when the queue has room for more (backpressure). */
  async waitForRoom(): Promise<void> {
    while (this.queued >= this.maxQueued) await new Promise<void>((r) => this.roomWaiters.push(r));
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    while (this.inFlight > 0 || this.queued > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
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
    if ((this.perEndpoint.get(key) ?? 0) >= this.maxPerEndpoint) return;
    if (!this.queues.get(key)?.length) return;
    this.readySet.add(key);
    this.ready.push(key);
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.ready.length > 0) {
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
      void this.run(item)
        .catch(() => undefined) // run() reports its own failures; the slot must be freed regardless
        .finally(() => {
          this.inFlight--;
          const n = (this.perEndpoint.get(key) ?? 1) - 1;
          if (n === 0) this.perEndpoint.delete(key);
          else this.perEndpoint.set(key, n);
          this.markReady(key);
          this.pump();
          this.wake();
        });
    }
    this.wake();
  }

  private wake(): void {
    if (this.queued < this.maxQueued && this.roomWaiters.length > 0) for (const r of this.roomWaiters.splice(0)) r();
    if (this.inFlight === 0 && this.queued === 0 && this.idleWaiters.length > 0) for (const r of this.idleWaiters.splice(0)) r();
  }
}

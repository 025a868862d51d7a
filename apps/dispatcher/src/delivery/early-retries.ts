// Retries of failed probes, remembered so they can run as soon as their endpoint answers again.
//
// While an endpoint's circuit is open, its waiting deliveries are parked or postponed with their
// attempt count unchanged, and only a probe spends an attempt. A failed probe's retry goes to
// its tier at its backoff, which on a production schedule is minutes to hours: once the endpoint
// answered, the rest of the backlog went through within seconds, and the deliveries that had
// been probes (one a second per replica for the whole outage) arrived hours after it.
//
// So the engine marks such a retry `verify` on its tier and remembers it here; when the endpoint
// answers, each remembered retry still far from due is attempted at once, as an early copy. The
// tier record stays the durable chain: the copy holds no record, is never handed to a tier, and
// if it fails its own retry is not scheduled (the tier record's attempt carries the delivery on).
// When the tier record comes due it must not be sent again if its copy succeeded. Only the
// replica that made the probe can have made a copy, so that replica answers from memory
// (`known`); another replica, or this one after a restart, asks the database (one query per
// chunk, an index probe on MongoDB but a scan on FerretDB: the memory spares a dead endpoint's
// probes that cost). A crash loses only the memory: the retries then come at their backoff.

/** What is remembered of a retry: when its tier record is due. */
export interface DueTask {
  dueAt: number;
}

/** What this replica knows of a remembered delivery when its tier record comes due. */
export type Known = 'not copied' | 'delivered' | 'not delivered' | 'running';

interface Entry<T> {
  endpointKey: string;
  dueAt: number;
  /** Until its copy is taken (then only what is known of it is kept). */
  task?: T;
  bytes: number;
  /** Attempts made before the retry (the tier record's). */
  attemptsMade: number;
  copy?: 'running' | 'delivered' | 'not delivered';
}

/** How long after its due time a delivery is still remembered, for its tier record to find. */
export const KNOWN_AFTER_DUE_MS = 120_000;

export class EarlyRetries<T extends DueTask> {
  /** Retries not copied yet, by endpoint, oldest first (their deliveries are in `byDelivery` too). */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly byDelivery = new Map<string, Entry<T>>();
  private heldBytes = 0;

  constructor(
    /** Most deliveries remembered at once on this replica; beyond it a retry waits for its backoff. */
    readonly capacity: number,
    /** Most payload bytes held for copies not taken yet; likewise. */
    readonly maxBytes = Infinity,
  ) {}

  /** Payload bytes held for copies not taken yet. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Retries remembered and not copied yet. */
  get size(): number {
    let n = 0;
    for (const line of this.waiting.values()) n += line.size;
    return n;
  }

  /** Remembers a retry produced to its tier for this endpoint (`bytes`: what it holds); false when there is no room. */
  remember(endpointKey: string, deliveryId: string, attemptsMade: number, task: T, bytes = 0): boolean {
    this.drop(deliveryId);
    if (this.byDelivery.size >= this.capacity || this.heldBytes + bytes > this.maxBytes) return false;
    this.byDelivery.set(deliveryId, { endpointKey, dueAt: task.dueAt, task, bytes, attemptsMade });
    this.heldBytes += bytes;
    const line = this.waiting.get(endpointKey);
    if (line) line.add(deliveryId);
    else this.waiting.set(endpointKey, new Set([deliveryId]));
    return true;
  }

  /**
   * Takes this endpoint's remembered retries that are due later than `now + leadMs` (the ones
   * due sooner come from their tier anyway), oldest first, as copies now running. The rest stay
   * known as not copied.
   */
  take(endpointKey: string, now: number, leadMs: number): { deliveryId: string; task: T }[] {
    const line = this.waiting.get(endpointKey);
    if (!line) return [];
    this.waiting.delete(endpointKey);
    const out: { deliveryId: string; task: T }[] = [];
    for (const deliveryId of line) {
      const e = this.byDelivery.get(deliveryId)!;
      const task = e.task!;
      this.release(e);
      if (e.dueAt <= now + leadMs) continue;
      e.copy = 'running';
      out.push({ deliveryId, task });
    }
    return out;
  }

  /** A copy that could not start (the circuit opened again): remembered as not copied. */
  putBack(deliveryId: string, task: T, bytes = 0): void {
    const e = this.byDelivery.get(deliveryId);
    if (!e || e.copy !== 'running') return;
    delete e.copy;
    e.task = task;
    e.bytes = bytes;
    this.heldBytes += bytes;
    const line = this.waiting.get(e.endpointKey);
    if (line) line.add(deliveryId);
    else this.waiting.set(e.endpointKey, new Set([deliveryId]));
  }

  /** A copy was attempted and recorded. */
  copyEnded(deliveryId: string, delivered: boolean): void {
    const e = this.byDelivery.get(deliveryId);
    if (e?.copy === 'running') e.copy = delivered ? 'delivered' : 'not delivered';
  }

  /**
   * What this replica knows of this delivery's retry record (attempts made `attemptsMade`), now
   * due: undefined when it knows nothing (ask the database). Once asked, it is forgotten.
   */
  known(deliveryId: string, attemptsMade: number): Known | undefined {
    const e = this.byDelivery.get(deliveryId);
    if (!e || e.attemptsMade !== attemptsMade) return undefined;
    this.drop(deliveryId);
    return e.copy ?? 'not copied';
  }

  /** Forgets this endpoint's retries not copied yet (it was deleted or disabled: they fail from their tier). */
  forget(endpointKey: string): void {
    for (const deliveryId of this.waiting.get(endpointKey) ?? []) this.drop(deliveryId);
  }

  /** Forgets deliveries due more than KNOWN_AFTER_DUE_MS ago (their tier record went to another replica). */
  sweep(now: number): void {
    for (const [deliveryId, e] of this.byDelivery) if (e.dueAt + KNOWN_AFTER_DUE_MS < now) this.drop(deliveryId);
  }

  private drop(deliveryId: string): void {
    const e = this.byDelivery.get(deliveryId);
    if (!e) return;
    this.release(e);
    this.byDelivery.delete(deliveryId);
    const line = this.waiting.get(e.endpointKey);
    if (!line?.delete(deliveryId)) return;
    if (line.size === 0) this.waiting.delete(e.endpointKey);
  }

  /** Lets go of a remembered task (its copy was taken, or it is forgotten); what is known stays. */
  private release(e: Entry<T>): void {
    if (!e.task) return;
    delete e.task;
    this.heldBytes -= e.bytes;
    e.bytes = 0;
  }
}

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
// copy holds no record and is never handed to a tier; once it is recorded it carries the
// delivery on (its success, its final failure, or its own retry, durable on its tier, at its own
// backoff or Retry-After), and the tier record it was copied from must then be dropped when it
// comes due. Only the replica that made the probe can have made a copy, so that replica answers
// from memory (`known`); another replica, or this one after a restart, asks the database (one
// query per chunk: an index probe on MongoDB, a scan on FerretDB, which the memory spares a dead
// endpoint's probes). A crash loses only the memory: the retries then come at their backoff.

/** What is remembered of a retry: when its tier record is due. */
export interface DueTask {
  dueAt: number;
}

/**
 * What this replica knows of a delivery whose remembered tier record is now due:
 * `not copied` (attempt it), `carried` (its copy was recorded and carries the delivery on: drop
 * it), `running` (a copy may be under way: ask the database).
 */
export type Known = 'not copied' | 'carried' | 'running';

interface Entry<T> {
  endpointKey: string;
  dueAt: number;
  /** Attempts made before the retry (the tier record's). */
  attemptsMade: number;
  state: 'waiting' | Known;
  /** While waiting: the task to copy, and the memory it holds. */
  task?: T;
  bytes: number;
}

/** How long after its due time a delivery is still remembered, for its tier record to find. */
export const KNOWN_AFTER_DUE_MS = 120_000;
/** How often sweep() looks for what is long past due. */
const SWEEP_EVERY_MS = 10_000;
/** Deliveries remembered (copies waiting or only their fate) per copy waiting at most. */
const KNOWN_PER_WAITING = 10;

export class EarlyRetries<T extends DueTask> {
  /** Retries waiting for a copy, by endpoint, oldest first. */
  private readonly waiting = new Map<string, Set<string>>();
  private waitingCount = 0;
  private readonly byDelivery = new Map<string, Entry<T>>();
  private heldBytes = 0;
  private sweptAt = 0;

  constructor(
    /** Retries waiting for a copy at most on this replica; beyond it a retry waits for its backoff. */
    readonly capacity: number,
    /** Payload bytes they may hold at most; likewise. */
    readonly maxBytes = Infinity,
  ) {}

  /** Retries waiting for a copy. */
  get size(): number {
    return this.waitingCount;
  }

  /** Payload bytes they hold. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Remembers a retry produced to its tier for this endpoint (`bytes`: what it holds); false when there is no room. */
  remember(endpointKey: string, deliveryId: string, attemptsMade: number, task: T, bytes = 0): boolean {
    this.drop(deliveryId);
    if (this.waitingCount >= this.capacity || this.heldBytes + bytes > this.maxBytes) return false;
    // What is known of copies made is small, but bounded too: the oldest goes first (its tier
    // record then asks the database).
    if (this.byDelivery.size >= this.capacity * KNOWN_PER_WAITING) {
      for (const [id, e] of this.byDelivery) {
        if (e.state === 'waiting') continue;
        this.drop(id);
        break;
      }
    }
    this.byDelivery.set(deliveryId, { endpointKey, dueAt: task.dueAt, attemptsMade, state: 'waiting', task, bytes });
    this.heldBytes += bytes;
    this.waitingCount++;
    const line = this.waiting.get(endpointKey);
    if (line) line.add(deliveryId);
    else this.waiting.set(endpointKey, new Set([deliveryId]));
    return true;
  }

  /**
   * Takes this endpoint's waiting retries due later than `now + leadMs`, oldest first, as copies
   * running; those due sooner are left to their tier (not copied).
   */
  take(endpointKey: string, now: number, leadMs: number): { deliveryId: string; task: T }[] {
    const line = this.waiting.get(endpointKey);
    if (!line) return [];
    this.waiting.delete(endpointKey);
    const out: { deliveryId: string; task: T }[] = [];
    for (const deliveryId of line) {
      const e = this.byDelivery.get(deliveryId)!;
      const task = e.task!;
      this.unhold(e);
      if (e.dueAt <= now + leadMs) e.state = 'not copied';
      else {
        e.state = 'running';
        out.push({ deliveryId, task });
      }
    }
    return out;
  }

  /**
   * True while this copy may still start: its tier record was not met yet and is due later than
   * `now + leadMs`. A copy too late for that is given up (its tier record is attempted).
   */
  stillEarly(deliveryId: string, attemptsMade: number, now: number, leadMs: number): boolean {
    const e = this.running(deliveryId, attemptsMade);
    if (!e) return false;
    if (e.dueAt > now + leadMs) return true;
    e.state = 'not copied';
    return false;
  }

  /** A copy that could not start (the circuit opened again): waiting again, if there is room. */
  putBack(deliveryId: string, attemptsMade: number, task: T, bytes = 0): void {
    const e = this.running(deliveryId, attemptsMade);
    if (!e) return;
    if (this.waitingCount >= this.capacity || this.heldBytes + bytes > this.maxBytes) {
      e.state = 'not copied';
      return;
    }
    e.state = 'waiting';
    e.task = task;
    e.bytes = bytes;
    this.heldBytes += bytes;
    this.waitingCount++;
    const line = this.waiting.get(e.endpointKey);
    if (line) line.add(deliveryId);
    else this.waiting.set(e.endpointKey, new Set([deliveryId]));
  }

  /** A copy was attempted and recorded: it carries the delivery on. */
  carried(deliveryId: string, attemptsMade: number): void {
    const e = this.running(deliveryId, attemptsMade);
    if (e) e.state = 'carried';
  }

  /** A copy was dropped before its attempt (spilled, or the registry did not answer): not copied after all. */
  abandoned(deliveryId: string, attemptsMade: number): void {
    const e = this.running(deliveryId, attemptsMade);
    if (e) e.state = 'not copied';
  }

  /**
   * What this replica knows of this delivery's remembered tier record (attempts made
   * `attemptsMade`), now due: undefined when it knows nothing (ask the database). Once asked, it
   * is forgotten.
   */
  known(deliveryId: string, attemptsMade: number): Known | undefined {
    const e = this.byDelivery.get(deliveryId);
    if (!e || e.attemptsMade !== attemptsMade) return undefined;
    this.drop(deliveryId);
    return e.state === 'waiting' ? 'not copied' : e.state;
  }

  /** Forgets this endpoint's waiting retries (it was deleted or disabled: they fail from their tier). */
  forget(endpointKey: string): void {
    for (const deliveryId of this.waiting.get(endpointKey) ?? []) this.drop(deliveryId);
  }

  /** Forgets, every SWEEP_EVERY_MS, deliveries due more than KNOWN_AFTER_DUE_MS ago (their tier record went elsewhere). */
  sweep(now: number): void {
    if (now - this.sweptAt < SWEEP_EVERY_MS) return;
    this.sweptAt = now;
    for (const [deliveryId, e] of this.byDelivery) if (e.dueAt + KNOWN_AFTER_DUE_MS < now) this.drop(deliveryId);
  }

  private running(deliveryId: string, attemptsMade: number): Entry<T> | undefined {
    const e = this.byDelivery.get(deliveryId);
    return e && e.state === 'running' && e.attemptsMade === attemptsMade ? e : undefined;
  }

  private drop(deliveryId: string): void {
    const e = this.byDelivery.get(deliveryId);
    if (!e) return;
    this.byDelivery.delete(deliveryId);
    if (e.state !== 'waiting') return;
    this.unhold(e);
    const line = this.waiting.get(e.endpointKey);
    line?.delete(deliveryId);
    if (line?.size === 0) this.waiting.delete(e.endpointKey);
  }

  /** A waiting entry lets go of its task (taken or dropped). */
  private unhold(e: Entry<T>): void {
    delete e.task;
    this.heldBytes -= e.bytes;
    e.bytes = 0;
    this.waitingCount--;
  }
}

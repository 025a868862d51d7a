// Turns Kafka records into deliveries and runs them. Two kinds of record come in:
//   events (webhooks.events.v1): each becomes one task per subscribed endpoint, held in memory;
//   tasks (the retry tiers, webhooks.retry.<delay>.v1): one delivery whose next attempt is due.
// Both go through the same stages:
//   intake → queue (per-endpoint and global limits, round robin: no head-of-line blocking)
//          → pipeline.attempt (sign, POST, decide) → pipeline.record (attempt log, outcome, retry
//            produced to its tier) → settled.
// A record's offset is committed once every task it produced is settled, and every record before
// it too (OffsetTracker). Settled means: its outcome recorded (and its retry, if any, durable on a
// tier topic), or the task itself handed to a tier topic to wait there. Work that waits is never a
// database document: a slow endpoint's overflow, a task that waited in memory longer than
// spillAfterMs, work handed back at shutdown and every retry go to a tier topic, which any replica
// of the group consumes when it is due. The one exception is short and bounded: a due tier task
// of an endpoint whose circuit is open is parked in memory (parking.ts, record uncommitted, at
// most 60 s) until a probe succeeds, then fed to the queue with the rest of its park; the
// retries of its failed probes, waiting for their backoff, are then attempted early
// (early-retries.ts). A crash at any point redoes work (duplicates possible, bounded by the
// attempt-number index: see OutcomeWriter) but never loses it.
//
// A record of the events topic appended after this replica got its partition, of an event not
// met lately, is new: its deliveries start at once and its event is stored beside them (the
// record is committed once that insert is done too), so no database write sits between a
// publish and its first attempt. Any other record may have been read already (by the replica
// that had the partition, or this is a second record of one event): it waits for the event's
// insert, and if the event was stored already its tasks go to the grace tier marked `verify`, due
// after redeliveryGraceMs (longer than that replica needs to finish the attempt and record it),
// each attempted only if no success was recorded meanwhile.
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { eventsV1 } from '@hookline/proto';
import type { Logger } from '@hookline/service-kit';
import { extractKafkaContext, linkFromTraceparent, traceparentOf, tracer } from '@hookline/telemetry';
import type { KafkaMessage } from 'kafkajs';
import type { DispatcherModels, EventDoc } from '../store/models';
import { insertIntoBuckets } from '../store/insert';
import { deliveredAmong } from '../store/delivered-among';
import type { SubscriberSource } from '../subscribers/subscriber-cache';
import { decodeTask, deliveryIdOf, dueOf, type EventData, type Task, type Waiting } from '../retry/tasks';
import type { RetryTiers } from '../retry/retry-tiers';
import { Breakers } from './breakers';
import { EarlyRetries } from './early-retries';
import { OffsetTracker } from './offset-tracker';
import { Parking } from './parking';
import type { Attempted, AttemptTrace, DeliveryPipeline } from './pipeline';
import { WorkQueue, type WorkItem } from './work-queue';

interface Job extends WorkItem {
  task: Task;
  deliveryId: string;
  /** `${deliveryId}#${attemptsMade}`: one attempt of one delivery (its retry, produced before this job ends, is another). */
  key: string;
  /**
   * Intake continues the publisher's trace (context from the record's headers) and the attempt
   * runs later from the queue under it; a task from a tier starts a new trace linked to the one
   * that created the delivery.
   */
  trace: AttemptTrace;
  /** Releases the Kafka record's hold once the task is settled (idempotent). */
  settle: () => void;
  queuedAt: number;
  /** How long this task is put back for when its endpoint's breaker is open: the delay of the tier it came from. */
  postponeMs: number;
  /** Taken from a retry tier (not from the events topic). */
  fromTier: boolean;
  /** Memory the task holds, roughly: its payload and TASK_OVERHEAD_BYTES. */
  bytes: number;
  /** `topic/partition` of a tier task's record (its park ends if the partition moves away). */
  source?: string;
  /**
   * An early copy of a failed probe's retry (early-retries.ts): it holds no record, is never
   * handed to a tier, and schedules no retry of its own; its tier record is the durable chain.
   */
  early?: true;
}

export interface EngineOptions {
  retentionMs: number;
  maxInFlight: number;
  maxInFlightPerEndpoint: number;
  /** Tasks waiting in memory for one endpoint before more go to the shortest tier. Default max(4 × maxInFlightPerEndpoint, 64). */
  maxQueuedPerEndpoint?: number;
  /** A task not started this long after intake goes to the `now` tier (its record's offset can then be committed). Default 2 s. */
  spillAfterMs?: number;
  /** How long tasks of an events record met again wait before they are verified and attempted. Default 12 s. */
  redeliveryGraceMs?: number;
  /** Told about storage or broker failures of background work (readiness turns NOT_SERVING on timeouts). */
  onDependencyError?: (err: unknown) => void;
  /** Attempts in a row that fail before an endpoint gets only probes (0: never). Default 20. */
  breakerFailures?: number;
  /** One probe attempt per this long to an endpoint whose circuit is open. Default 1 s. */
  breakerProbeMs?: number;
  /** Tier tasks of open-circuit endpoints held in memory at most (parking.ts). Default 20,000 (~30 MB of 1 KiB payloads). */
  maxParked?: number;
  /** Payload bytes parked at most, beside maxParked (a 256 KiB payload counts as such). Default 128 MiB. */
  maxParkedBytes?: number;
  /** Payload bytes of tasks held in memory (queued, in flight, being recorded) above which intake waits. Default 256 MiB. */
  maxHeldBytes?: number;
  /** Longest a task stays parked before it goes back to a tier (its record's offset is held meanwhile). Default 60 s. */
  parkMaxMs?: number;
}

/** What intakeTasks took of a chunk, and when to look at the rest. */
export interface TaskIntake {
  /** Records taken, from the start of the chunk (their offsets may be resolved). */
  taken: number;
  /** Set when the record after them is not due: pause the partition until then. */
  resumeAt?: number;
}

/** Longest stretch of a postponement by how long a circuit has been open. */
const POSTPONE_STRETCH_MAX_MS = 15_000;
/** Longest an intake waits for room at one endpoint before its overflow goes to a tier. */
const ENDPOINT_WAIT_MS = 1_000;
/** Event ids remembered to tell a second record of one event from a new one without the database. */
const RECENT_EVENTS = 100_000;
/** Replicas' clocks may differ this much when telling whether a tier record was due before a takeover. */
const CLOCK_SKEW_MS = 1_000;
/** How often queued tasks are checked for age. */
const AGE_CHECK_MS = 250;
/** Failed probes' retries remembered at once on a replica, to be attempted when their endpoint answers. */
const EARLY_RETRIES_MAX = 10_000;
/** And their payload bytes at most. */
const EARLY_RETRIES_MAX_BYTES = 32 * 1024 * 1024;
/** Memory a task holds beside its payload, roughly (ids, headers, trace), for the park's byte bound. */
const TASK_OVERHEAD_BYTES = 1_024;
/**
 * A remembered retry due sooner than this after its endpoint answers is left to its tier: its
 * record could come due while the early copy still waits behind the endpoint's park (both would
 * then be attempted).
 */
const EARLY_LEAD_MS = 5_000;
/** Likewise when the copy is about to start (it waited in the queue meanwhile). */
const EARLY_START_LEAD_MS = 1_000;
/** Backoff between tries to record an outcome while the database or broker is down. */
const RECORD_RETRY_MS = [200, 1_000, 2_000, 5_000];

export class DeliveryEngine {
  /** Offsets of the events topic whose tasks are all settled: the events consumer commits from here. */
  readonly eventOffsets = new OffsetTracker();
  /** Likewise for the tier topics (the retry consumer). */
  readonly taskOffsets = new OffsetTracker();
  private readonly queue: WorkQueue<Job>;
  private stopped = false;
  /** After the stop deadline: outcome writes that keep failing are abandoned (their records are read again). */
  private abandoned = false;
  /** Tasks this replica holds (queued, in flight, or being recorded), by delivery and attempt. */
  private readonly held = new Map<string, Job>();
  /** Of them, taken from a retry tier. */
  private heldFromTiers = 0;
  private readonly intakes = new Set<Promise<unknown>>();
  /** Event ids this replica took from the events topic lately. */
  private readonly recentEvents = new RecentIds(RECENT_EVENTS);
  private readonly spillAfterMs: number;
  private readonly redeliveryGraceMs: number;
  /** Tasks held in memory (queued, in flight, or being recorded) above which intake waits. */
  private readonly maxHeld: number;
  /** Their payload bytes (each task counts its own, though the tasks of one event share it), and the most intake lets in. */
  private heldBytes = 0;
  private readonly maxHeldBytes: number;
  private ageTimer: NodeJS.Timeout | undefined;
  readonly breakers: Breakers;
  /** Tier tasks of endpoints whose circuit is open, until a probe succeeds (parking.ts). */
  private readonly parking: Parking<Job>;
  /** Tier partitions ("topic/partition") this replica owns, as of the last rebalance; unknown before the first. */
  private ownedTier: Set<string> | undefined;
  private readonly parkMaxMs: number;
  /** Endpoints whose park is being fed to the work queue. */
  private readonly feeding = new Set<string>();
  /** Endpoints whose early copies are being fed to the work queue. */
  private readonly feedingEarly = new Set<string>();
  /** Retries of failed probes, attempted early when their endpoint answers (early-retries.ts). */
  private readonly earlyRetries = new EarlyRetries<Task>(EARLY_RETRIES_MAX, EARLY_RETRIES_MAX_BYTES);

  constructor(
    private readonly models: Pick<DispatcherModels, 'events' | 'delivered'>,
    private readonly subscribers: SubscriberSource,
    private readonly pipeline: DeliveryPipeline,
    private readonly waiting: Waiting,
    private readonly tiers: RetryTiers,
    private readonly opts: EngineOptions,
    private readonly log: Logger,
  ) {
    this.spillAfterMs = opts.spillAfterMs ?? 2_000;
    this.redeliveryGraceMs = opts.redeliveryGraceMs ?? 12_000;
    this.maxHeld = opts.maxInFlight * 9;
    this.maxHeldBytes = opts.maxHeldBytes ?? 256 * 1024 * 1024;
    this.breakers = new Breakers(opts.breakerFailures ?? 20, opts.breakerProbeMs ?? 1_000, log);
    this.parking = new Parking<Job>(opts.maxParked ?? 20_000, opts.maxParkedBytes ?? 128 * 1024 * 1024);
    this.parkMaxMs = opts.parkMaxMs ?? 60_000;
    this.queue = new WorkQueue<Job>(
      {
        maxInFlight: opts.maxInFlight,
        maxPerEndpoint: opts.maxInFlightPerEndpoint,
        maxQueued: opts.maxInFlight * 8,
        maxQueuedPerEndpoint: opts.maxQueuedPerEndpoint ?? Math.max(opts.maxInFlightPerEndpoint * 4, 64),
      },
      (job) => this.runJob(job),
    );
    this.ageTimer = setInterval(() => {
      void this.spillAged();
      void this.tendParking();
      this.earlyRetries.sweep(Date.now());
    }, AGE_CHECK_MS);
    this.ageTimer.unref();
  }

  get load(): { inFlight: number; queued: number; held: number; heldBytes: number; parked: number; earlyRetries: number } {
    return { ...this.queue.size, held: this.held.size, heldBytes: this.heldBytes, parked: this.parking.size, earlyRetries: this.earlyRetries.size };
  }

  get stopping(): boolean {
    return this.stopped;
  }

  /**
   * Backpressure for the Kafka consumers: true once there is room for more intake, false after
   * `timeoutMs` without room (the caller heartbeats and asks again, or gives up when stopping).
   */
  async waitForRoom(timeoutMs: number, forTiers = false): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    if (!(await this.queue.waitForRoom(timeoutMs))) return false;
    // Attempts whose outcomes are still being written count too: a database slower than the
    // endpoints must hold intake back rather than let unwritten outcomes pile up in memory.
    // Tier work (retries, a recovering endpoint's backlog) may hold at most half of it, so first
    // attempts always find room: a backlog drains beside new events, not in front of them.
    // And their payloads: 2,304 tasks (the default budget) of 256 KiB payloads would be 576 MiB.
    while (this.held.size >= this.maxHeld || this.heldBytes >= this.maxHeldBytes || (forTiers && this.heldFromTiers >= this.maxHeld / 2)) {
      if (Date.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  }

  /**
   * Takes a chunk of one events partition: stores the events and queues their tasks. Resolves
   * once the records are registered with `eventOffsets`; throws if the registry or database is
   * unavailable (nothing is registered, and Kafka redelivers).
   */
  intakeEvents(topic: string, partition: number, messages: KafkaMessage[], heartbeat?: () => Promise<void>): Promise<void> {
    return this.track(this.doIntakeEvents(topic, partition, messages, heartbeat));
  }

  /**
   * Takes the due records at the start of a chunk of one tier partition and queues their tasks.
   * Stops at the first record not due yet (the caller pauses the partition until `resumeAt`); a
   * record due later than its tier can wait is produced again to the tier that fits, so it never
   * holds the records behind it.
   */
  intakeTasks(topic: string, partition: number, messages: KafkaMessage[], heartbeat?: () => Promise<void>): Promise<TaskIntake> {
    return this.track(this.doIntakeTasks(topic, partition, messages, heartbeat));
  }

  private track<T>(run: Promise<T>): Promise<T> {
    this.intakes.add(run);
    return run.finally(() => this.intakes.delete(run));
  }

  private async doIntakeEvents(topic: string, partition: number, messages: KafkaMessage[], heartbeat?: () => Promise<void>): Promise<void> {
    // Records registered already were fetched again after a rebalance that left the partition here.
    const records = messages.filter((m) => !this.eventOffsets.seen(topic, partition, m.offset));
    // Records the partition's previous owner settled past its commit point are registered as
    // settled, and nothing else (offset-tracker.ts).
    const inheriting = this.eventOffsets.settledElsewhere(topic, partition);
    const settledElsewhere = typeof inheriting === 'function' ? inheriting : await whileBeating(inheriting, heartbeat);
    const now = Date.now();
    // A record appended after this replica was given the partition, of an event not met lately,
    // cannot have been read by anyone else: its deliveries start at once and its event is stored
    // beside them (the record stays uncommitted until it is). The others may have been read by the
    // replica that had the partition, or be a second record of one event (ingest producing again
    // after a timeout): the insert tells (the event is stored already), and they wait for it.
    const takenOverAt = this.eventOffsets.assignedAt(topic, partition) ?? Infinity;
    const mayBeMetAgain = new Set(records.filter((m) => Number(m.timestamp) < takenOverAt + CLOCK_SKEW_MS).map((m) => m.offset));
    const events: (EventData & { offset: string })[] = [];
    // One consumer span per record, continuing the trace its producer put in the headers (no-op
    // spans while tracing is off). Ended once the tasks are queued.
    const spans = new Map<string, Span>();
    for (const m of records) {
      if (!m.value || settledElsewhere(m.offset)) continue;
      try {
        const r = eventsV1.EventRecord.decode(m.value);
        events.push({ id: r.eventId, workspaceId: r.workspaceId, type: r.eventType, createdAt: r.createTime ?? new Date(Number(m.timestamp)), payload: Buffer.from(r.payload), offset: m.offset });
        if (this.recentEvents.note(r.eventId)) mayBeMetAgain.add(m.offset);
        spans.set(
          r.eventId,
          tracer().startSpan(
            'webhook.intake',
            { kind: SpanKind.CONSUMER, attributes: { 'messaging.system': 'kafka', 'messaging.operation.type': 'process', 'messaging.kafka.offset': Number(m.offset), 'hookline.event_id': r.eventId, 'hookline.event_type': r.eventType, 'hookline.workspace_id': r.workspaceId } },
            extractKafkaContext(m.headers),
          ),
        );
      } catch (err) {
        // Only event-ingest writes this topic; an undecodable record is a bug, not input. Logged, skipped.
        this.log.error({ err, offset: m.offset }, 'undecodable record on the events topic skipped');
      }
    }
    const groups = new Map<string, (EventData & { offset: string })[]>();
    for (const e of events) {
      const k = `${e.workspaceId}\u0000${e.type}`;
      groups.set(k, [...(groups.get(k) ?? []), e]);
    }
    const expiresAt = new Date(now + this.opts.retentionMs);
    const jobsByOffset = new Map<string, Job[]>();
    const eventDocs: (EventDoc & { offset: string })[] = [];
    const ctxOf = (eventId: string): Context => trace.setSpan(ROOT_CONTEXT, spans.get(eventId)!);
    let fresh: Job[];
    let again: Job[];
    try {
      await Promise.all(
        [...groups.values()].map(async (group) => {
          const first = group[0]!;
          // The lookup (cache or registry) is shared by the group; its span sits in the first event's trace.
          const lookup = tracer().startSpan('subscribers.resolve', { attributes: { 'hookline.workspace_id': first.workspaceId, 'hookline.event_type': first.type, 'hookline.events': group.length } }, ctxOf(first.id));
          let subs: Awaited<ReturnType<SubscriberSource['resolve']>>;
          try {
            subs = await context.with(trace.setSpan(ROOT_CONTEXT, lookup), () => this.subscribers.resolve(first.workspaceId, first.type));
            lookup.setAttribute('hookline.subscribers', subs.length);
          } catch (err) {
            lookup.recordException(err as Error);
            lookup.setStatus({ code: SpanStatusCode.ERROR });
            throw err;
          } finally {
            lookup.end();
          }
          for (const e of group) spans.get(e.id)?.setAttribute('hookline.deliveries', subs.length);
          if (subs.length === 0) return;
          for (const e of group) {
            const parent = ctxOf(e.id);
            const traceparent = traceparentOf(parent);
            const { offset: _offset, ...event } = e;
            eventDocs.push({ _id: e.id, workspaceId: e.workspaceId, eventType: e.type, payload: e.payload, createdAt: e.createdAt, expiresAt, offset: e.offset });
            jobsByOffset.set(
              e.offset,
              subs.map((s) => this.job({ event, endpointId: s.endpointId, attemptsMade: 0, dueAt: now, verify: false, ...(traceparent ? { traceparent } : {}) }, { parent })),
            );
          }
        }),
      );
      // An event stored already means its record was met before (see the header).
      const checked = eventDocs.filter((d) => mayBeMetAgain.has(d.offset)).map(eventDoc);
      const stored = await insertIntoBuckets(this.models.events, checked, (d) => d.createdAt);
      const byOffset = [...jobsByOffset.entries()];
      const maybeMet = byOffset.flatMap(([offset, jobs]) => (mayBeMetAgain.has(offset) ? jobs : []));
      fresh = [...byOffset.flatMap(([offset, jobs]) => (mayBeMetAgain.has(offset) ? [] : jobs)), ...maybeMet.filter((j) => stored.has(j.task.event.id))];
      again = maybeMet.filter((j) => !stored.has(j.task.event.id));
    } catch (err) {
      for (const span of spans.values()) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'intake failed; the record will be redelivered' });
      }
      throw err;
    } finally {
      for (const span of spans.values()) span.end();
    }
    const unstored = eventDocs.filter((d) => !mayBeMetAgain.has(d.offset));
    const releases = this.register(this.eventOffsets, topic, partition, records, jobsByOffset, new Set(unstored.map((d) => d.offset)));
    if (unstored.length > 0) void this.track(this.store(unstored.map(eventDoc), () => releases.forEach((release) => release())));
    if (again.length > 0) {
      this.log.info({ deliveries: again.length, partition }, 'records met again: deliveries wait in the grace tier, then are attempted only if not delivered meanwhile');
      const due = Date.now() + this.redeliveryGraceMs;
      for (const j of again) j.task = { ...j.task, verify: true, dueAt: due };
      await this.defer(again);
    }
    await this.enqueue(fresh, heartbeat);
  }

  private async doIntakeTasks(topic: string, partition: number, messages: KafkaMessage[], heartbeat?: () => Promise<void>): Promise<TaskIntake> {
    const tier = this.tiers.byTopic(topic);
    const inheriting = this.taskOffsets.settledElsewhere(topic, partition);
    const settledElsewhere = typeof inheriting === 'function' ? inheriting : await whileBeating(inheriting, heartbeat);
    const now = Date.now();
    let taken = 0;
    let resumeAt: number | undefined;
    const hops: Job[] = [];
    const jobsByOffset = new Map<string, Job[]>();
    const fresh: KafkaMessage[] = [];
    // A record the replica that had the partition took and attempted but had not committed yet
    // (killed, or still finishing after a rebalance) is attempted again here, unless its commit's
    // metadata says it was settled: duplicates, bounded by the attempt-number index (finding 10).
    // Checking such records against `delivered` was built twice and measured on FerretDB, where
    // every query scans its bucket: one lookup per task took the full backlog's drain after a
    // SIGKILL from ~280/s to ~5/s (session 4), one query per chunk still to 0-100/s with FerretDB
    // at 130 % (session 5). On MongoDB both are index probes; there, marking records due before
    // `taskOffsets.assignedAt` as `verify` would do.
    for (const m of messages) {
      // Settled by the partition's previous owner past its commit point: registered, with no
      // task, due or not.
      const elsewhere = settledElsewhere(m.offset);
      const due = dueOf(m);
      if (!elsewhere && due > now && tier && !this.tiers.hopsFrom(tier, due - now)) {
        resumeAt = due;
        break;
      }
      taken++;
      // Registered already: fetched again after a rebalance that left the partition here.
      if (this.taskOffsets.seen(topic, partition, m.offset)) continue;
      fresh.push(m);
      if (elsewhere) continue;
      let task: Task;
      try {
        task = decodeTask(m);
      } catch (err) {
        // Only dispatchers write these topics; an undecodable record is a bug, not input.
        this.log.error({ err, topic, offset: m.offset }, 'undecodable record on a retry tier skipped');
        continue;
      }
      const job = this.job(task, { links: linkFromTraceparent(task.traceparent) }, tier?.delayMs);
      job.source = `${topic}/${partition}`;
      jobsByOffset.set(m.offset, [job]);
      if (due > now) hops.push(job);
    }
    const hopping = new Set(hops);
    const due = [...jobsByOffset.values()].flat().filter((j) => !hopping.has(j));
    // A failed probe's retry is marked verify; the replica that made the probe knows whether it
    // sent an early copy (early-retries.ts), and only asks the database when it does not know.
    const toCheck: Job[] = [];
    const delivered = new Set<Job>();
    for (const j of due) {
      if (!j.task.verify) continue;
      const known = this.earlyRetries.known(j.deliveryId, j.task.attemptsMade);
      if (known === 'carried') delivered.add(j);
      else if (known === 'not copied') j.task = { ...j.task, verify: false };
      else toCheck.push(j);
    }
    for (const j of await whileBeating(this.deliveredAmong(toCheck), heartbeat)) delivered.add(j);
    this.register(this.taskOffsets, topic, partition, fresh, jobsByOffset);
    const superseded = supersededIn(due);
    for (const j of superseded) j.settle();
    if (hops.length > 0) await this.defer(hops);
    if (delivered.size > 0) this.log.debug({ deliveries: delivered.size, topic, partition }, 'tasks to verify delivered already: dropped');
    for (const j of delivered) j.settle();
    await this.enqueue(
      due.filter((j) => !delivered.has(j) && !superseded.has(j)),
      heartbeat,
    );
    return resumeAt === undefined ? { taken } : { taken, resumeAt };
  }

  /**
   * Of these tasks marked `verify`, those whose delivery succeeded after their attempts; the
   * others lose the mark (checked now, their attempt need not look again). One query per time
   * bucket for the whole chunk (store/delivered-among.ts): the soak's ~3,000 checks after a
   * SIGKILL, one lookup per attempt inside its slot, held the attempt slots for over a minute.
   * When the database does not answer, the tasks keep their mark and each attempt checks for
   * itself.
   */
  private async deliveredAmong(jobs: Job[]): Promise<Set<Job>> {
    if (jobs.length === 0) return new Set();
    let found: Map<string, number>;
    try {
      found = await deliveredAmong(this.models.delivered, jobs.map((j) => ({ deliveryId: j.deliveryId, eventCreatedAt: j.task.event.createdAt })));
    } catch (err) {
      this.opts.onDependencyError?.(err);
      this.log.warn({ err, count: jobs.length }, 'could not check which tasks were delivered already; each attempt checks for itself');
      return new Set();
    }
    for (const j of jobs) j.task = { ...j.task, verify: false };
    // A success after this task's attempts: the task was attempted (and succeeded) meanwhile. A
    // success not after them is what a RetryDelivery resends: it goes on.
    return new Set(jobs.filter((j) => (found.get(j.deliveryId) ?? 0) > j.task.attemptsMade));
  }

  private hold(j: Job): void {
    // Never replace a held job: its release would no longer find it and heldFromTiers would leak
    // until tier intake stopped for good (the full backlog scenario wedged so after a SIGKILL).
    // enqueue checks right before queueing; this is the last guard.
    if (this.held.has(j.key)) {
      this.log.error({ key: j.key }, 'the same attempt queued twice; not held again');
      return;
    }
    this.held.set(j.key, j);
    this.heldBytes += j.bytes;
    if (j.fromTier) this.heldFromTiers++;
  }

  private release(j: Job): void {
    if (this.held.get(j.key) !== j) return;
    this.held.delete(j.key);
    this.heldBytes -= j.bytes;
    if (j.fromTier) this.heldFromTiers--;
  }

  private job(task: Task, trace: AttemptTrace, fromTierMs = 0): Job {
    const deliveryId = deliveryIdOf(task);
    return {
      task,
      deliveryId,
      key: `${deliveryId}#${task.attemptsMade}`,
      endpointKey: `${task.event.workspaceId}|${task.endpointId}`,
      trace,
      settle: () => undefined,
      queuedAt: Date.now(),
      postponeMs: Math.max(fromTierMs, this.tiers.shortest.delayMs),
      fromTier: fromTierMs > 0,
      bytes: task.event.payload.length + TASK_OVERHEAD_BYTES,
    };
  }

  /**
   * Registers records and holds each until its tasks settle, in one synchronous step (no commit can
   * pass a record before its tasks count). Records in `unstored` are held once more, until the
   * returned release of each is called (once their event is stored).
   */
  private register(offsets: OffsetTracker, topic: string, partition: number, records: KafkaMessage[], jobsByOffset: Map<string, Job[]>, unstored = new Set<string>()): (() => void)[] {
    const releases: (() => void)[] = [];
    for (const m of records) {
      const ticket = offsets.register(topic, partition, m.offset);
      if (unstored.has(m.offset)) {
        ticket.hold();
        releases.push(() => ticket.release());
      }
      for (const j of jobsByOffset.get(m.offset) ?? []) {
        ticket.hold();
        let settled = false;
        j.settle = () => {
          if (settled) return;
          settled = true;
          ticket.release();
        };
      }
    }
    return releases;
  }

  /**
   * Queues tasks in order. An endpoint whose queue is full is waited for, but an intake waits at
   * most ENDPOINT_WAIT_MS in all: what is still refused then (a slow or hanging endpoint's
   * overflow) goes to the shortest tier, so intake goes on for every other endpoint.
   */
  private async enqueue(jobs: Job[], heartbeat?: () => Promise<void>): Promise<void> {
    const waitUntil = Date.now() + ENDPOINT_WAIT_MS;
    const overflow: Job[] = [];
    const postponed: Job[] = [];
    let beat = Date.now();
    let heartbeatError: unknown;
    for (const j of jobs) {
      // The same attempt of the same delivery held or parked already (a manual retry or a record
      // read again while it waits here): it runs once.
      if (this.coveredBy(j)) continue;
      if (!this.stopped && !this.breakers.allow(j.endpointKey, Date.now())) {
        // The circuit is open: a tier task waits in memory for the probe that closes it (its
        // record stays uncommitted); a first attempt, or a task the park has no room for, goes to
        // a tier first (its events record must not wait for an endpoint's recovery).
        if (!(j.fromTier && this.park(j))) postponed.push(j);
        continue;
      }
      let queued = !this.stopped && this.queue.push(j);
      let duplicate = false;
      while (!queued && !this.stopped) {
        const left = waitUntil - Date.now();
        if (left <= 0 || !(await this.queue.waitForEndpointRoom(j.endpointKey, left))) break;
        // Another intake (another partition) may have queued the same attempt while this one
        // waited: check again, with no await between the check, the push and the hold.
        if ((duplicate = this.coveredBy(j))) break;
        queued = this.queue.push(j);
      }
      if (duplicate) continue;
      if (!queued) {
        overflow.push(j);
        continue;
      }
      j.queuedAt = Date.now();
      this.hold(j);
      // Waiting for room must not cost the consumer its group membership.
      if (heartbeat && heartbeatError === undefined && Date.now() - beat >= 1_000) {
        beat = Date.now();
        try {
          await heartbeat();
        } catch (err) {
          // A rebalance: the records are registered, so what is queued must settle; kafkajs gets its error after.
          heartbeatError = err;
        }
      }
    }
    if (postponed.length > 0) await this.postpone(postponed);
    if (overflow.length > 0) {
      this.log.debug({ deliveries: overflow.length }, 'endpoint queues full: overflow waits in the shortest tier');
      const due = Date.now() + this.tiers.shortest.delayMs;
      for (const j of overflow) j.task = { ...j.task, dueAt: due };
      await this.defer(overflow);
    }
    if (heartbeatError !== undefined) throw heartbeatError;
  }

  /**
   * Puts tasks of an open-circuit endpoint back in a tier, attempt count unchanged. At least five
   * probe intervals, and longer the longer it has been open (up to 15 s), so what does not fit
   * the park does not cycle through a short tier while the probes fail (each cycle costs a
   * produce and a fetch per task), yet is due again soon after the endpoint recovers.
   */
  private postpone(jobs: Job[]): Promise<void> {
    const now = Date.now();
    const floor = 5 * (this.opts.breakerProbeMs ?? 1_000);
    for (const j of jobs) j.task = { ...j.task, dueAt: now + Math.max(j.postponeMs, floor, Math.min(this.breakers.openForMs(j.endpointKey, now), POSTPONE_STRETCH_MAX_MS)) };
    return this.defer(jobs);
  }

  /**
   * Every AGE_CHECK_MS: a parked endpoint whose probe is due gets its oldest task attempted; one
   * whose circuit closed (a success on another path) is fed; tasks parked longer than parkMaxMs
   * go back to a tier, so no record's offset is held for longer than that.
   */
  private async tendParking(): Promise<void> {
    if (this.stopped || this.parking.size === 0) return;
    const now = Date.now();
    for (const key of this.parking.endpoints()) {
      if (this.feeding.has(key)) continue;
      if (!this.breakers.isOpen(key)) {
        this.unpark(key);
        continue;
      }
      if (!this.breakers.allow(key, now)) continue;
      const probe = this.parking.takeOne(key);
      if (!probe) continue;
      if (this.coveredBy(probe)) continue;
      if (this.queue.push(probe)) {
        probe.queuedAt = now;
        this.hold(probe);
      } else if (!this.park(probe)) await this.postpone([probe]);
    }
    const expired = this.parking.takeOlderThan(this.parkMaxMs, now);
    if (expired.length > 0) {
      this.log.info({ deliveries: expired.length }, 'deliveries parked longer than the park allows: back to a tier');
      await this.postpone(expired);
    }
  }

  /**
   * The endpoint answered: its parked tasks go to the work queue at its own pace, while its
   * circuit stays closed. `gone`: it was deleted or disabled, and each parked task fails at once
   * without a request, circuit or not.
   */
  private unpark(endpointKey: string, gone = false): void {
    if (this.feeding.has(endpointKey) || this.stopped || !this.parking.hasEndpoint(endpointKey)) return;
    this.feeding.add(endpointKey);
    void this.track(this.feed(endpointKey, gone)).finally(() => this.feeding.delete(endpointKey));
  }

  private async feed(endpointKey: string, gone: boolean): Promise<void> {
    while (!this.stopped && (gone || !this.breakers.isOpen(endpointKey))) {
      // Within the tier budget, like tier intake: a recovering backlog drains beside first
      // attempts, never in front of them (without this, a healthy endpoint's p99 reached ~900 ms
      // while 10,000 parked deliveries drained at 4,300/s).
      while (!this.stopped && !this.roomForTierWork()) await sleep(5);
      const j = this.parking.takeOne(endpointKey);
      if (!j) return;
      if (this.coveredBy(j)) continue;
      while (!this.stopped && !this.queue.push(j)) await this.queue.waitForEndpointRoom(endpointKey, 1_000);
      if (this.stopped) {
        // Not queued: stop() hands the park and the queue back; this one goes with them.
        if (!this.park(j)) await this.postpone([j]);
        return;
      }
      j.queuedAt = Date.now();
      this.hold(j);
    }
  }

  /**
   * The endpoint answered: the retries of its failed probes still waiting for their backoff are
   * attempted now, as early copies, at the endpoint's pace and within the tier budget. Should the
   * circuit open again meanwhile, the rest are remembered for the next recovery.
   */
  private attemptEarly(endpointKey: string): void {
    // One feed per endpoint: what is remembered meanwhile waits for the next success.
    if (this.stopped || this.feedingEarly.has(endpointKey)) return;
    const tasks = this.earlyRetries.take(endpointKey, Date.now(), EARLY_LEAD_MS);
    if (tasks.length === 0) return;
    this.log.info({ endpoint: endpointKey, deliveries: tasks.length }, 'endpoint answered again: retries of its failed probes attempted now, not at their backoff');
    this.feedingEarly.add(endpointKey);
    void this.track(this.feedEarly(endpointKey, tasks)).finally(() => this.feedingEarly.delete(endpointKey));
  }

  private async feedEarly(endpointKey: string, tasks: { deliveryId: string; task: Task }[]): Promise<void> {
    for (const [i, { deliveryId, task }] of tasks.entries()) {
      while (!this.stopped && !this.breakers.isOpen(endpointKey) && !this.roomForTierWork()) await sleep(5);
      let queued = false;
      while (!this.stopped && !this.breakers.isOpen(endpointKey)) {
        // Checked again before each try: a copy must not start once its tier record is near (both would be sent).
        if (!this.earlyRetries.stillEarly(deliveryId, task.attemptsMade, Date.now(), EARLY_LEAD_MS)) break;
        const j = this.job({ ...task, dueAt: Date.now(), verify: false }, { links: linkFromTraceparent(task.traceparent) }, this.tiers.shortest.delayMs);
        j.key += '~early';
        j.early = true;
        if ((queued = this.queue.push(j))) {
          j.queuedAt = Date.now();
          this.hold(j);
          break;
        }
        await this.queue.waitForEndpointRoom(endpointKey, 1_000);
      }
      if (this.stopped) return;
      if (!queued && this.breakers.isOpen(endpointKey)) {
        for (const rest of tasks.slice(i)) this.earlyRetries.putBack(rest.deliveryId, rest.task.attemptsMade, rest.task, rest.task.event.payload.length + TASK_OVERHEAD_BYTES);
        return;
      }
    }
  }

  /** Room for more tier work (a backlog or early copies): within half the held budget, and the byte budget. */
  private roomForTierWork(): boolean {
    return this.heldFromTiers < this.maxHeld / 2 && this.heldBytes < this.maxHeldBytes;
  }

  /**
   * True when this attempt of this delivery is held already (queued or running) or covered by a
   * parked task: it runs once. A held twin settles it when it settles itself, so a record read
   * again (a partition that came back after a rebalance or a consumer re-run) is not committed
   * while the attempt that covers it may still fail to be recorded; a parked one holds its own
   * record, so this one is settled at once.
   */
  private coveredBy(j: Job): boolean {
    const twin = this.held.get(j.key);
    if (twin) {
      const settleTwin = twin.settle;
      twin.settle = () => {
        settleTwin();
        j.settle();
      };
      return true;
    }
    if (!this.parking.covers(j)) return false;
    j.settle();
    return true;
  }

  /**
   * Parks a tier task; false when the park has no room (the caller sends it back to a tier). A
   * task of a delivery parked at the same or a later attempt is settled at once, and so is the
   * parked task a later attempt replaces: the parked one holds their place.
   */
  private park(j: Job): boolean {
    // A task of a tier partition that moved to another replica (it was on its way here, queued or
    // in an intake, when the partition went) is its new owner's: it reads the record again and
    // parks it there. Parked here too, both replicas would send it when the endpoint answers.
    if (j.source !== undefined && this.ownedTier !== undefined && !this.ownedTier.has(j.source)) {
      j.settle();
      return true;
    }
    const r = this.parking.park(j, Date.now());
    if (!r.parked) {
      if (r.why === 'full') return false;
      j.settle();
      return true;
    }
    r.superseded?.settle();
    return true;
  }

  /** After a rebalance: parked tasks of tier partitions this replica no longer owns are their new owner's (it reads them again). */
  retainParked(assigned: Record<string, number[]>): void {
    const owned = new Set(Object.entries(assigned).flatMap(([topic, partitions]) => partitions.map((p) => `${topic}/${p}`)));
    this.ownedTier = owned;
    const gone = this.parking.takeNotIn(owned);
    if (gone.length > 0) this.log.info({ deliveries: gone.length }, 'parked deliveries of partitions moved to another replica dropped (their new owner reads them again)');
  }

  /**
   * Stores events whose deliveries are already under way, trying again while the database refuses,
   * then calls `stored`. Past the stop deadline it gives up: their records stay uncommitted and are
   * read again (as records met again) by the partition's next owner.
   */
  private async store(docs: EventDoc[], stored: () => void): Promise<void> {
    const done = await this.untilDone(() => insertIntoBuckets(this.models.events, docs, (d) => d.createdAt), { count: docs.length }, 'events not stored');
    if (done) stored();
  }

  /**
   * Runs `write` until it succeeds (true), backing off while a dependency refuses; past the stop
   * deadline gives up (false) and the records concerned stay uncommitted.
   */
  private async untilDone(write: () => Promise<unknown>, context: object, what: string): Promise<boolean> {
    for (let i = 0; ; i++) {
      try {
        await write();
        return true;
      } catch (err) {
        this.opts.onDependencyError?.(err);
        if (this.abandoned) {
          this.log.warn({ err, ...context }, `${what} before the stop deadline; their records will be read again`);
          return false;
        }
        this.log.warn({ err, ...context }, `${what} yet; trying again`);
        await sleep(RECORD_RETRY_MS[Math.min(i, RECORD_RETRY_MS.length - 1)]!);
      }
    }
  }

  /**
   * Hands tasks to the tiers (each waits until its dueAt) and settles them once the broker has
   * them. While the broker refuses, tries again with backoff; past the stop deadline it gives up
   * and leaves their records uncommitted (read again by the partition's next owner).
   */
  private async defer(all: Job[]): Promise<void> {
    // An early copy is not handed to a tier: its tier record is there already, and is attempted.
    const jobs = all.filter((j) => !j.early);
    for (const j of all) if (j.early) this.earlyRetries.abandoned(j.deliveryId, j.task.attemptsMade);
    if (jobs.length === 0) return;
    if (await this.untilDone(() => this.waiting.wait(jobs.map((j) => j.task)), { count: jobs.length }, 'deliveries not handed to the retry tiers')) for (const j of jobs) j.settle();
  }

  /** Tasks that waited in memory longer than spillAfterMs without starting: out to the `now` tier, due at once. */
  private async spillAged(): Promise<void> {
    if (this.stopped) return;
    const cutoff = Date.now() - this.spillAfterMs;
    const aged = this.queue.removeQueued((j) => j.queuedAt <= cutoff);
    if (aged.length === 0) return;
    this.log.debug({ deliveries: aged.length }, 'deliveries waiting longer than SPILL_AFTER_MS handed to the now tier');
    for (const j of aged) this.release(j);
    await this.defer(aged);
  }

  /**
   * Runs a job in the work queue: the queue slot (the endpoint's concurrency) is freed as soon as
   * the HTTP exchange is over and the outcome is written after that, so an endpoint's pace is its
   * own, not the database's. The job stays held (counted by waitForRoom) until it is settled.
   */
  private runJob(job: Job): Promise<void> {
    return new Promise<void>((slotFree) => void this.runToEnd(job, slotFree));
  }

  private async runToEnd(job: Job, slotFree: () => void): Promise<void> {
    try {
      // An early copy whose tier record was met meanwhile, or is about due, is not sent: the record is.
      if (job.early && !this.earlyRetries.stillEarly(job.deliveryId, job.task.attemptsMade, Date.now(), EARLY_START_LEAD_MS)) return;
      let attempted: Attempted;
      try {
        attempted = await this.pipeline.attempt(job.task, job.trace, slotFree);
      } catch (err) {
        // The registry did not answer who the subscribers are: nothing was sent. The task waits
        // in the shortest tier and is tried again from there.
        slotFree();
        this.log.warn({ err, deliveryId: job.deliveryId }, 'subscribers unavailable; delivery handed to the shortest tier');
        this.opts.onDependencyError?.(err);
        job.task = { ...job.task, dueAt: Date.now() + this.tiers.shortest.delayMs };
        await this.defer([job]);
        return;
      }
      const { decision } = attempted;
      const d = decision.kind;
      const now = Date.now();
      if (d === 'succeeded' || (attempted.outcome.attempt && (d === 'retry' || d === 'failed'))) this.breakers.record(job.endpointKey, d === 'succeeded', now);
      // Answered again, or gone (deleted, disabled: each parked task then fails at once without a request).
      if (d === 'succeeded') {
        this.unpark(job.endpointKey);
        this.attemptEarly(job.endpointKey);
      } else if (d === 'failed' && !attempted.outcome.attempt) {
        this.unpark(job.endpointKey, true);
        this.earlyRetries.forget(job.endpointKey);
      }
      // A probe (or the failure that opened the circuit) failed: its retry waits in its tier,
      // marked to be dropped there if delivered meanwhile, and is remembered to be attempted as
      // soon as the endpoint answers (unless the endpoint asked for the delay with Retry-After).
      // An early copy is recorded like any attempt (its retry, if any, at its own backoff or
      // Retry-After) and then carries the delivery on: its tier record is dropped when due.
      let remember: Task | undefined;
      if (!job.early && decision.kind === 'retry' && !decision.retryAfter && attempted.next && attempted.next.dueAt - now > EARLY_LEAD_MS && this.breakers.isOpen(job.endpointKey)) {
        attempted.next = remember = { ...attempted.next, verify: true };
      }
      if (await this.untilDone(() => this.pipeline.record(attempted), { deliveryId: job.deliveryId }, 'outcome not recorded')) {
        job.settle();
        if (remember && attempted.done.scheduled) this.earlyRetries.remember(job.endpointKey, job.deliveryId, remember.attemptsMade, remember, job.bytes);
        if (job.early) this.earlyRetries.carried(job.deliveryId, job.task.attemptsMade);
      }
    } finally {
      slotFree();
      this.release(job);
    }
  }

  /**
   * Graceful stop: no new work; queued tasks are handed to the `now` tier at once; in-flight
   * attempts get up to `deadlineMs` to finish and be recorded; whatever is still running then is
   * handed back too, marked `verify` and due once its attempt would have timed out (another
   * replica attempts it unless it was delivered meanwhile). When this resolves every task is
   * settled (unless the broker and database are down), so the caller can commit the final offsets.
   */
  async stop(deadlineMs: number, attemptTimeoutMs = 10_000): Promise<void> {
    this.stopped = true;
    clearInterval(this.ageTimer);
    const deadline = Date.now() + deadlineMs;
    const abandonAt = setTimeout(() => (this.abandoned = true), deadlineMs);
    await Promise.allSettled([...this.intakes]);
    const queued = this.queue.drainQueued();
    for (const j of queued) this.release(j);
    for (const j of queued) j.task = { ...j.task, dueAt: Date.now() };
    const parked = this.parking.takeAll();
    await Promise.all([this.defer(queued), this.postpone(parked)]);
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      (async () => {
        await this.queue.idle();
        while (this.held.size > 0) await sleep(10);
        return true;
      })(),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(deadline - Date.now(), 0)))),
    ]);
    clearTimeout(timer);
    const running = [...this.held.values()];
    if (running.length > 0) {
      const due = Date.now() + attemptTimeoutMs + 1_000;
      await this.defer(running.map((j) => ({ ...j, task: { ...j.task, verify: true, dueAt: due } })));
    }
    this.abandoned = true;
    clearTimeout(abandonAt);
    this.log.info({ handedBackQueued: queued.length, handedBackParked: parked.length, handedBackInFlight: running.length, finishedInTime: finished, unsettled: this.eventOffsets.unsettled + this.taskOffsets.unsettled }, 'delivery engine stopped');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits for `work` and heartbeats every second meanwhile: a database query slower than the
 * session timeout must not cost the consumer its group membership (the rebalances that follow
 * stop every replica's intake). A failed heartbeat (a rebalance began) is left to the next one.
 */
async function whileBeating<T>(work: Promise<T>, heartbeat?: () => Promise<void>): Promise<T> {
  if (!heartbeat) return work;
  let done = false;
  const result = work.finally(() => (done = true));
  while (!done) {
    await Promise.race([result.catch(() => undefined), sleep(1_000)]);
    if (!done) await heartbeat().catch(() => undefined);
  }
  return result;
}
const eventDoc = ({ offset: _offset, ...doc }: EventDoc & { offset: string }): EventDoc => doc;

/** The last `max` ids noted, oldest forgotten first. */
class RecentIds {
  private readonly ids = new Set<string>();
  constructor(private readonly max: number) {}

  /** Notes `id`; true when it was noted already. */
  note(id: string): boolean {
    if (this.ids.has(id)) return true;
    this.ids.add(id);
    if (this.ids.size > this.max) this.ids.delete(this.ids.values().next().value!);
    return false;
  }
}

/**
 * Tasks of a chunk that a later attempt of the same delivery in the same chunk supersedes. A
 * delivery's records sit in its partition in attempt order, and the earlier ones are read again
 * when a commit point waited behind them (a rebalance after a parked outage re-read one delivery's
 * record of every failed probe): the latest is the one that counts.
 */
export function supersededIn<J extends { deliveryId: string; task: { attemptsMade: number } }>(jobs: J[]): Set<J> {
  const latest = new Map<string, J>();
  for (const j of jobs) {
    const l = latest.get(j.deliveryId);
    if (!l || j.task.attemptsMade >= l.task.attemptsMade) latest.set(j.deliveryId, j);
  }
  return new Set(latest.size === jobs.length ? [] : jobs.filter((j) => latest.get(j.deliveryId) !== j));
}

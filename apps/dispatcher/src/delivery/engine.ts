// Turns Kafka records into deliveries and runs them:
//   intake:    record → (subscribers) → event written → deliveries queued in memory.
//   settle:    a delivery is settled once its outcome is durable (`delivered` on a first-attempt
//              success, `deliveries` when it must be retried or failed), or once it is written to
//              `deliveries` as pending work (spilled: its endpoint's queue is full, or it has waited
//              longer than spillAfterMs). A record's offset is committed once every delivery of it,
//              and of every record before it, is settled (OffsetTracker). A crash at any point
//              redoes work (duplicates possible) but never loses it; a slow endpoint costs a spill
//              write, never the partition's progress (no head-of-line blocking).
//   scheduler: due retries, spilled work and deliveries whose lease lapsed (a replica died) →
//              lease → queue.
// The happy path (first attempt succeeds) costs two grouped inserts and no update: FerretDB's
// updates scan the collection, so `deliveries` holds only work that needs the database.
//
// A record met again after a rebalance or a crash (its event is already stored) may have been
// delivered by the replica that had it: its deliveries are written as pending with `verify` and
// left for redeliveryGraceMs (longer than that replica needs to finish the attempt and record it);
// the scheduler then attempts only those not found in `delivered`.
//
// Leases: every delivery this replica holds in memory that has a document has its lease renewed
// every leaseMs/3, so a long queue behind a slow endpoint is never taken over by another replica
// (or re-queued by our own scheduler) while this replica is alive; a replica that dies stops
// renewing and its work is retaken leaseMs later.
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Link, type Span } from '@opentelemetry/api';
import { eventsV1 } from '@hookline/proto';
import type { Logger } from '@hookline/service-kit';
import { extractKafkaContext, linkFromTraceparent, traceparentOf, tracer } from '@hookline/telemetry';
import type { KafkaMessage } from 'kafkajs';
import { payloadBytes, type DeliveryDoc, type DispatcherModels, type EventDoc } from '../store/models';
import { insertIgnoringDuplicates } from '../store/insert';
import type { DeliveryTrack } from '../store/outcome-writer';
import type { SubscriberSource } from '../subscribers/subscriber-cache';
import { OffsetTracker } from './offset-tracker';
import type { DeliveryPipeline, EventData } from './pipeline';
import { WorkQueue, type WorkItem } from './work-queue';

interface Job extends WorkItem {
  delivery: DeliveryDoc;
  event: EventData;
  /**
   * Trace of the work: intake continues the publisher's trace (context from the record's
   * headers) and the attempt runs later from the queue under it; a retry picked up by the
   * scheduler starts a new trace linked to the one that created the delivery.
   */
  trace: { parent?: Context; links?: Link[] };
  /** Deliveries straight from Kafka: where they stand in the database (absent: taken from the database). */
  track?: DeliveryTrack;
  /** Releases the Kafka record's hold once the delivery is settled (called once). */
  settle?: () => void;
  intakeAt: number;
  /** Another replica wrote this delivery's document first (it met the record again): not attempted here. */
  abandoned?: boolean;
}

export interface EngineOptions {
  owner: string;
  leaseMs: number;
  retentionMs: number;
  maxInFlight: number;
  maxInFlightPerEndpoint: number;
  schedulerIntervalMs: number;
  /** Deliveries waiting in memory for one endpoint before more are left in the database. Default 4 × maxInFlightPerEndpoint, at least 64. */
  maxQueuedPerEndpoint?: number;
  /** A delivery from Kafka not settled after this long is written to the database (so its record's offset can be committed). Default 2 s. */
  spillAfterMs?: number;
  /** How long deliveries of a record met again wait before they are attempted (see the header). Default 12 s. */
  redeliveryGraceMs?: number;
  /**
   * Runs a write to deliveries this replica holds so that it never overlaps an outcome write
   * (OutcomeWriter.exclusive); FerretDB can lose one of two concurrent updates of a document.
   */
  serialize?: <T>(write: () => Promise<T>) => Promise<T>;
  /** Told about storage failures of background work (readiness turns NOT_SERVING on timeouts). */
  onDependencyError?: (err: unknown) => void;
}

/** An endpoint whose recent completions would drain its overflow within this many seconds is waited for. */
const FLOWING_DRAIN_S = 1;
/** An endpoint whose attempts take at most this long on average is waited for whatever its backlog. */
const QUICK_ANSWER_MS = 250;
/** Scans kicked by finished work (rather than the timer) are at least this far apart. */
const KICK_INTERVAL_MS = 250;

const durable = (j: Job): boolean => !j.track || j.track.recorded || j.track.done;

export class DeliveryEngine {
  /** Offsets whose deliveries are all settled: the consumer commits from here. */
  readonly offsets = new OffsetTracker();
  private readonly queue: WorkQueue<Job>;
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  private stopped = false;
  /** Deliveries this replica holds (queued or in flight), by delivery id. */
  private readonly held = new Map<string, Job>();
  /** Deliveries from Kafka whose attempt could not be recorded, nor they spilled yet: retried every tick. */
  private unwritten: Job[] = [];
  private lastRenewal = 0;
  private lastKick = 0;
  /** Endpoints with due deliveries left in the database because their in-memory queue was full. */
  private readonly spilled = new Set<string>();
  private rescan = false;
  private readonly intakes = new Set<Promise<unknown>>();
  private readonly serialize: <T>(write: () => Promise<T>) => Promise<T>;
  private readonly spillAfterMs: number;
  /** Deliveries held in memory (queued, in flight, or being recorded) above which intake waits. */
  private readonly maxHeld: number;
  private readonly redeliveryGraceMs: number;

  constructor(
    private readonly models: DispatcherModels,
    private readonly subscribers: SubscriberSource,
    private readonly pipeline: DeliveryPipeline,
    private readonly opts: EngineOptions,
    private readonly log: Logger,
  ) {
    this.serialize = opts.serialize ?? ((write) => write());
    this.spillAfterMs = opts.spillAfterMs ?? 2_000;
    this.redeliveryGraceMs = opts.redeliveryGraceMs ?? 12_000;
    this.maxHeld = opts.maxInFlight * 9;
    this.queue = new WorkQueue<Job>(
      {
        maxInFlight: opts.maxInFlight,
        maxPerEndpoint: opts.maxInFlightPerEndpoint,
        maxQueued: opts.maxInFlight * 8,
        maxQueuedPerEndpoint: opts.maxQueuedPerEndpoint ?? Math.max(opts.maxInFlightPerEndpoint * 4, 64),
      },
      (job) => this.runJob(job),
    );
  }

  get load(): { inFlight: number; queued: number; held: number } {
    return { ...this.queue.size, held: this.held.size };
  }

  get stopping(): boolean {
    return this.stopped;
  }

  /**
   * Backpressure for the Kafka consumer: true once there is room for more intake, false after
   * `timeoutMs` without room (the caller heartbeats and asks again, or gives up when stopping).
   */
  async waitForRoom(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    if (!(await this.queue.waitForRoom(timeoutMs))) return false;
    // Attempts whose outcomes are still being written count too: a database slower than the
    // endpoints must hold intake back rather than let unwritten outcomes pile up in memory.
    while (this.held.size >= this.maxHeld) {
      if (Date.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  }

  /**
   * Takes a chunk of one partition's records: stores their events and queues their deliveries.
   * Resolves once the records are registered with `offsets` (which later says when they may be
   * committed); throws if the registry or database is unavailable (nothing is registered, and
   * Kafka redelivers).
   */
  intake(topic: string, partition: number, messages: KafkaMessage[], heartbeat?: () => Promise<void>): Promise<void> {
    const run = this.doIntake(topic, partition, messages, heartbeat);
    this.intakes.add(run);
    return run.finally(() => this.intakes.delete(run));
  }

  private async doIntake(topic: string, partition: number, messages: KafkaMessage[], heartbeat?: () => Promise<void>): Promise<void> {
    const now = Date.now();
    // Records registered already were fetched again after a rebalance that left the partition here.
    const records = messages.filter((m) => !this.offsets.seen(topic, partition, m.offset));
    const events: (EventData & { offset: string })[] = [];
    // One consumer span per record, continuing the trace its producer put in the headers (no-op
    // spans while tracing is off). Ended once the deliveries are queued.
    const spans = new Map<string, Span>();
    for (const m of records) {
      if (!m.value) continue;
      try {
        const r = eventsV1.EventRecord.decode(m.value);
        events.push({ id: r.eventId, workspaceId: r.workspaceId, type: r.eventType, createdAt: r.createTime ?? new Date(Number(m.timestamp)), payload: r.payload, offset: m.offset });
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
    const eventDocs: EventDoc[] = [];
    const ctxOf = (eventId: string): Context => trace.setSpan(ROOT_CONTEXT, spans.get(eventId)!);
    let fresh: Job[];
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
            eventDocs.push({ _id: e.id, workspaceId: e.workspaceId, eventType: e.type, payload: e.payload, createdAt: e.createdAt, expiresAt });
            const jobs = subs.map((s): Job => ({
              endpointKey: `${e.workspaceId}|${s.endpointId}`,
              delivery: {
                _id: `${e.id}|${s.endpointId}`,
                eventId: e.id,
                workspaceId: e.workspaceId,
                endpointId: s.endpointId,
                eventType: e.type,
                eventCreatedAt: e.createdAt,
                state: 'pending',
                attemptCount: 0,
                nextAttemptAt: new Date(now),
                leaseOwner: '',
                leaseUntil: new Date(0),
                lastError: '',
                updatedAt: new Date(now),
                expiresAt,
                ...(traceparent ? { traceparent } : {}),
              },
              event: e,
              trace: { parent },
              track: { recorded: false, done: false },
              intakeAt: now,
            }));
            jobsByOffset.set(e.offset, jobs);
          }
        }),
      );
      // An event stored already means its record was met before (see the header).
      const stored = await insertIgnoringDuplicates(this.models.events, eventDocs);
      const all = [...jobsByOffset.values()].flat();
      fresh = all.filter((j) => stored.has(j.event.id));
      // Also for deliveries this replica still holds from an earlier read of the record (a
      // partition lost and won back): the new registration may be committed before that job
      // settles, so the database must have the delivery.
      const again = all.filter((j) => !stored.has(j.event.id));
      if (again.length > 0) {
        const at = new Date(now + this.redeliveryGraceMs);
        await insertIgnoringDuplicates(
          this.models.deliveries,
          again.map((j) => ({ ...j.delivery, nextAttemptAt: at, verify: true })),
        );
        this.log.info({ deliveries: again.length, partition }, 'records met again: deliveries left to the scheduler, which skips those already delivered');
      }
    } catch (err) {
      for (const span of spans.values()) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'intake failed; the record will be redelivered' });
      }
      throw err;
    } finally {
      for (const span of spans.values()) span.end();
    }
    // Registered and held in one synchronous step, so no commit can pass a record before its deliveries are counted.
    const isFresh = new Set(fresh);
    for (const m of records) {
      const ticket = this.offsets.register(topic, partition, m.offset);
      for (const j of jobsByOffset.get(m.offset) ?? []) {
        if (!isFresh.has(j)) continue;
        ticket.hold();
        let settled = false;
        j.settle = () => {
          if (settled) return;
          settled = true;
          ticket.release();
        };
      }
    }
    await this.enqueue(fresh, heartbeat);
  }

  startScheduler(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.schedulerIntervalMs);
  }

  private async tick(): Promise<void> {
    await this.renewLeases();
    await this.spillAged();
    await this.scan();
  }

  /**
   * Queues jobs. When an endpoint's queue is full: if the endpoint is flowing (it answers within
   * QUICK_ANSWER_MS on average, or its recent completions would drain the overflow within
   * FLOWING_DRAIN_S) this waits for room, which holds
   * the Kafka consumer back (backpressure); otherwise (slow, hanging, or still waiting after
   * spillAfterMs) the overflow goes to the database for the scheduler, so intake goes on for the
   * other endpoints. Writing a fast endpoint's burst to the database would cost far more than
   * waiting for it.
   */
  private async enqueue(jobs: Job[], heartbeat?: () => Promise<void>): Promise<void> {
    let overflow = this.pushAll(jobs);
    const toDatabase: Job[] = [];
    const started = Date.now();
    let beat = started;
    let heartbeatError: unknown;
    while (overflow.length > 0 && !this.stopped) {
      const key = overflow[0]!.endpointKey;
      const mine = overflow.filter((j) => j.endpointKey === key);
      const rate = this.queue.rateOf(key);
      // Waiting for a quick endpoint is backpressure, however long: its queue drains at our own pace.
      const flowing = this.quick(key) || (Date.now() - started < this.spillAfterMs && rate > 0 && mine.length / rate <= FLOWING_DRAIN_S);
      if (!flowing) {
        this.log.debug({ endpoint: key, deliveries: mine.length, latencyMs: this.queue.latencyOf(key), oldestRunMs: Math.round(this.queue.oldestRunMs(key)), perSecond: rate }, 'endpoint queue full and not keeping up: deliveries written to the database');
        toDatabase.push(...mine);
        overflow = overflow.filter((j) => j.endpointKey !== key);
        continue;
      }
      await this.queue.waitForEndpointRoom(key, 100);
      overflow = this.pushAll(overflow);
      // A long wait must not cost the consumer its group membership.
      if (heartbeat && Date.now() - beat >= 1_000) {
        beat = Date.now();
        try {
          await heartbeat();
        } catch (err) {
          // A rebalance: what is not queued yet goes to the database first (it is registered,
          // so it must settle), then kafkajs gets its error.
          heartbeatError = err;
          break;
        }
      }
    }
    toDatabase.push(...overflow);
    if (toDatabase.length > 0) {
      for (const j of toDatabase) this.spilled.add(j.endpointKey);
      await this.handBack(toDatabase, new Date());
    }
    if (heartbeatError !== undefined) throw heartbeatError;
  }

  /**
   * Answers quickly on average (or has not answered yet: a new endpoint) and has no request
   * running long: its backlog is the dispatcher's own pace, not the endpoint's.
   */
  private quick(key: string): boolean {
    const latency = this.queue.latencyOf(key);
    return (latency === undefined || latency <= QUICK_ANSWER_MS) && this.queue.oldestRunMs(key) <= 4 * QUICK_ANSWER_MS;
  }

  /** Pushes jobs in order; returns those refused (their endpoint's queue is full, or stopping). */
  private pushAll(jobs: Job[]): Job[] {
    const refused: Job[] = [];
    for (const j of jobs) {
      if (this.held.has(j.delivery._id)) {
        j.settle?.();
        continue;
      }
      if (this.stopped || !this.queue.push(j)) {
        refused.push(j);
        continue;
      }
      this.held.set(j.delivery._id, j);
    }
    return refused;
  }

  /**
   * Leaves jobs to any replica's scheduler from `at`: documents' leases are released, deliveries
   * held only in memory are written as pending.
   */
  private async handBack(jobs: Job[], at: Date): Promise<void> {
    const leased = jobs.filter((j) => !j.track || j.track.recorded).map((j) => j.delivery._id);
    await this.release(leased, at).catch((err: unknown) => this.log.warn({ err, count: leased.length }, 'could not release deliveries; their leases will lapse'));
    await this.spill(
      jobs.filter((j) => j.track),
      { leased: false, at },
    );
  }

  /**
   * Writes deliveries held only in memory to the database as pending work (leased to this
   * replica while it keeps them, or free for any scheduler), which settles them. One that
   * fails to be written is retried every tick until it is.
   */
  private async spill(jobs: Job[], how: { leased: boolean; at: Date }): Promise<void> {
    if (jobs.length === 0) return;
    try {
      await this.serialize(async () => {
        // Read inside the writer's sequence: an outcome written meanwhile settles the job instead.
        const todo = jobs.filter((j) => j.track && !j.track.recorded && !j.track.done);
        if (todo.length === 0) return;
        const now = Date.now();
        const docs = todo.map((j) => ({
          ...j.delivery,
          nextAttemptAt: how.at,
          leaseOwner: how.leased ? this.opts.owner : '',
          leaseUntil: how.leased ? new Date(now + this.opts.leaseMs) : new Date(0),
          updatedAt: new Date(now),
        }));
        const inserted = await insertIgnoringDuplicates(this.models.deliveries, docs);
        for (const [i, j] of todo.entries()) {
          j.track!.recorded = true;
          j.delivery = docs[i]!;
          // Written by another replica that met the record again: its copy is the one to run.
          if (!inserted.has(j.delivery._id)) j.abandoned = true;
        }
      });
    } catch (err) {
      this.log.warn({ err, count: jobs.length }, 'could not write deliveries to the database; retrying next tick');
      this.opts.onDependencyError?.(err);
      for (const j of jobs) if (!durable(j) && !this.held.has(j.delivery._id) && !this.unwritten.includes(j)) this.unwritten.push(j);
    }
    for (const j of jobs) if (durable(j)) j.settle?.();
  }

  /** Writes deliveries that waited in memory longer than spillAfterMs, and retries writes that failed. */
  private async spillAged(): Promise<void> {
    const unwritten = this.unwritten.filter((j) => !durable(j));
    this.unwritten = [];
    await this.spill(unwritten, { leased: false, at: new Date() });
    const cutoff = Date.now() - this.spillAfterMs;
    // Still waiting to start behind an endpoint that is not quick: it is slower than its traffic
    // (a quick endpoint's backlog is the dispatcher's own pace, and waits). Out of memory and into the
    // database, for any replica's scheduler as the endpoint has room (the global queue is not
    // left full of one endpoint's backlog, which would stall intake for all).
    const waiting = this.queue.removeQueued((j) => j.intakeAt <= cutoff && !durable(j) && !this.quick(j.endpointKey));
    if (waiting.length > 0) this.log.debug({ deliveries: waiting.length }, 'deliveries waiting longer than SPILL_AFTER_MS behind slow endpoints written to the database');
    for (const j of waiting) {
      this.held.delete(j.delivery._id);
      this.spilled.add(j.endpointKey);
    }
    await this.spill(waiting, { leased: false, at: new Date() });
    // Running (a slow answer): written as leased to this replica, whose attempt is recorded on it.
    // A quick endpoint's deliveries are left alone: they wait for the dispatcher's own pace, and
    // writing them would only add updates (their records' offsets are committed a little later).
    const running = [...this.held.values()].filter((j) => j.intakeAt <= cutoff && !durable(j) && !this.quick(j.endpointKey));
    await this.spill(running, { leased: true, at: new Date() });
  }

  /** Gives leases back so any replica's scheduler may take the deliveries from `at`. */
  private async release(ids: string[], at: Date): Promise<void> {
    for (let i = 0; i < ids.length; i += 1000) {
      await this.models.deliveries.updateMany({ _id: { $in: ids.slice(i, i + 1000) }, leaseOwner: this.opts.owner }, { $set: { leaseOwner: '', leaseUntil: at } });
    }
  }

  /** Extends the leases of everything held in memory that has a document (every leaseMs / 3). */
  async renewLeases(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastRenewal < this.opts.leaseMs / 3) return;
    this.lastRenewal = now;
    const ids = [...this.held.values()].filter((j) => !j.track || j.track.recorded).map((j) => j.delivery._id);
    const leaseUntil = new Date(now + this.opts.leaseMs);
    try {
      for (let i = 0; i < ids.length; i += 1000) {
        const chunk = ids.slice(i, i + 1000);
        await this.serialize(() => this.models.deliveries.updateMany({ _id: { $in: chunk }, leaseOwner: this.opts.owner, state: 'pending' }, { $set: { leaseUntil } }));
      }
    } catch (err) {
      this.log.warn({ err }, 'lease renewal failed; retrying next tick');
    }
  }

  /** Leases due deliveries (retries, and work abandoned by a replica that died) and queues them. */
  async scan(): Promise<number> {
    if (this.stopped) return 0;
    if (this.scanning) {
      this.rescan = true;
      return 0;
    }
    this.scanning = true;
    let claimed = 0;
    try {
      const now = new Date();
      const room = Math.min(Math.max(this.opts.maxInFlight * 4 - this.queue.size.queued, 0), 500);
      if (room === 0) return 0;
      // Endpoints whose in-memory queue is full are skipped, so their backlog cannot crowd
      // other endpoints' due retries out of the page.
      const saturated = this.queue.saturated();
      const filter: Record<string, unknown> = { state: 'pending', nextAttemptAt: { $lte: now }, leaseUntil: { $lte: now } };
      if (saturated.length > 0) filter.endpointId = { $nin: saturated.map((k) => k.slice(k.indexOf('|') + 1)) };
      const found = await this.models.deliveries.find(filter).sort({ nextAttemptAt: 1 }).limit(room).lean<DeliveryDoc[]>();
      const full = found.length >= room;
      // Take no more per endpoint than its queue has room for; the rest stays in the database.
      const roomFor = new Map<string, number>();
      const due: DeliveryDoc[] = [];
      for (const d of found) {
        // Already ours in memory (e.g. a manual retry reset its lease): it runs once, from memory.
        if (this.held.has(d._id)) continue;
        const key = `${d.workspaceId}|${d.endpointId}`;
        const left = roomFor.get(key) ?? this.queue.roomFor(key);
        if (left <= 0) {
          this.spilled.add(key);
          continue;
        }
        roomFor.set(key, left - 1);
        due.push(d);
      }
      // A partial page saw everything due, except for saturated endpoints (left out of the query).
      if (!full) for (const key of this.spilled) if (!saturated.includes(key) && (roomFor.get(key) ?? 1) > 0) this.spilled.delete(key);
      if (due.length === 0) return 0;
      const leaseUntil = new Date(now.getTime() + this.opts.leaseMs);
      // One conditional update for the page and one read of what it won: FerretDB scans the
      // collection for every update, so a lease per document would cost a scan each. A document
      // whose lease another replica took meanwhile keeps that lease (its leaseUntil is new).
      await this.models.deliveries.updateMany({ _id: { $in: due.map((d) => d._id) }, state: 'pending', leaseUntil: { $lte: now } }, { $set: { leaseOwner: this.opts.owner, leaseUntil } });
      const won = await this.models.deliveries.find({ _id: { $in: due.map((d) => d._id) }, leaseOwner: this.opts.owner, leaseUntil }).lean<DeliveryDoc[]>();
      const mine = won.filter((d) => !this.held.has(d._id));
      // Deliveries of records met again: those the first replica delivered are only marked so.
      const toRun: DeliveryDoc[] = [];
      for (const d of mine) {
        if (!d.verify) {
          toRun.push(d);
          continue;
        }
        const done = await this.models.delivered.findById(d._id).lean();
        if (!done) {
          toRun.push(d);
          continue;
        }
        await this.serialize(() =>
          this.models.deliveries.updateOne(
            { _id: d._id, state: 'pending' },
            { $set: { state: 'succeeded', verify: false, attemptCount: done.attemptCount, nextAttemptAt: null, lastError: '', leaseOwner: '', leaseUntil: new Date(0), updatedAt: new Date() } },
          ),
        );
      }
      // One _id lookup per event: FerretDB answers those from its primary key, but scans for `$in`.
      const eventIds = [...new Set(toRun.map((d) => d.eventId))];
      const events = (await Promise.all(eventIds.map((id) => this.models.events.findById(id).lean<EventDoc>()))).filter((e): e is EventDoc => e !== null);
      const byId = new Map(events.map((e) => [e._id, e]));
      const jobs: Job[] = [];
      for (const d of toRun) {
        const e = byId.get(d.eventId);
        if (!e) {
          await this.models.deliveries.updateOne({ _id: d._id, leaseOwner: this.opts.owner }, { $set: { state: 'failed', lastError: 'event expired before delivery', leaseOwner: '', leaseUntil: new Date(0) } });
          continue;
        }
        jobs.push({
          endpointKey: `${d.workspaceId}|${d.endpointId}`,
          delivery: d,
          event: { id: e._id, workspaceId: e.workspaceId, type: e.eventType, createdAt: e.createdAt, payload: payloadBytes(e.payload) },
          trace: { links: linkFromTraceparent(d.traceparent) },
          intakeAt: Date.now(),
        });
      }
      await this.enqueue(jobs);
      claimed = jobs.length;
      if (full) this.rescan = true;
    } catch (err) {
      this.log.warn({ err }, 'scheduler scan failed; retrying next tick');
      this.opts.onDependencyError?.(err);
    } finally {
      this.scanning = false;
    }
    if (this.rescan && !this.stopped) {
      this.rescan = false;
      setImmediate(() => void this.scan());
    }
    return claimed;
  }

  /**
   * Runs a job in the work queue: the queue slot (the endpoint's concurrency) is freed as soon as
   * the HTTP exchange is over, and the outcome is written after that, so an endpoint's pace is its
   * own, not the database's. The job stays held (counted by waitForRoom) until it is settled.
   */
  private runJob(job: Job): Promise<void> {
    return new Promise<void>((slotFree) => void this.runToEnd(job, slotFree));
  }

  private async runToEnd(job: Job, slotFree: () => void): Promise<void> {
    try {
      if (job.abandoned) return;
      await this.pipeline.run(job.delivery, job.event, job.trace, job.track, slotFree);
    } catch (err) {
      // Storage or registry fault. A leased document lapses and the scheduler retries it; a
      // delivery held only in memory is written as pending next tick.
      this.log.warn({ err, deliveryId: job.delivery._id }, 'delivery attempt not recorded; will be retried');
      this.opts.onDependencyError?.(err);
      if (!durable(job)) this.unwritten.push(job);
    } finally {
      slotFree();
      this.held.delete(job.delivery._id);
      if (durable(job)) job.settle?.();
      // Room again for this endpoint's deliveries left in the database: fetch them soon, not next
      // tick (but not after every delivery: each scan reads the collection).
      if (this.spilled.has(job.endpointKey) && !this.stopped && Date.now() - this.lastKick >= KICK_INTERVAL_MS) {
        this.lastKick = Date.now();
        void this.scan();
      }
    }
  }

  /**
   * Graceful stop: no new work; queued deliveries are handed back at once; in-flight attempts
   * get up to `deadlineMs` to finish and be recorded; whatever is still running then is handed
   * back too (another replica may attempt it again: at-least-once, never lost, never stuck
   * behind a lease of a process that is gone). When this resolves every delivery is settled
   * (unless the database is down), so the caller can commit the final offsets.
   */
  async stop(deadlineMs: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const deadline = Date.now() + deadlineMs;
    await Promise.allSettled([...this.intakes]);
    const queued = this.queue.drainQueued();
    for (const j of queued) this.held.delete(j.delivery._id);
    await this.handBack(queued, new Date(0));
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      // Attempts running and outcomes being written.
      (async () => {
        await this.queue.idle();
        while (this.held.size > 0) await new Promise((r) => setTimeout(r, 10));
        return true;
      })(),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(deadline - Date.now(), 0)))),
    ]);
    clearTimeout(timer);
    const running = [...this.held.values()];
    if (running.length > 0) await this.handBack(running, new Date(0));
    const unwritten = this.unwritten.filter((j) => !durable(j));
    this.unwritten = [];
    await this.spill(unwritten, { leased: false, at: new Date(0) });
    this.log.info({ handedBackQueued: queued.length, handedBackInFlight: running.length, finishedInTime: finished, unsettled: this.offsets.unsettled }, 'delivery engine stopped');
  }
}

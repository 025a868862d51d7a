// Turns Kafka records into durable deliveries and runs them:
//   intake:    record → (subscribers) → events + deliveries written (leased to this replica)
//              → offsets committed → work queue.
//   scheduler: due retries and deliveries whose lease lapsed (a replica died) → lease → queue.
// Offsets are committed only after the deliveries are in the database, so a crash at any point
// redoes work (duplicates possible) but never loses it.
//
// Leases: every delivery this replica holds in memory (queued or in flight) has its lease renewed
// every leaseMs/3, so a long queue behind a slow endpoint is never taken over by another replica
// (or re-queued by our own scheduler) while this replica is alive; a replica that dies stops
// renewing and its work is retaken leaseMs later. A delivery that does not fit in memory (its
// endpoint's queue is full) is released at once and left to the scheduler.
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Link, type Span } from '@opentelemetry/api';
import { eventsV1 } from '@hookline/proto';
import type { Logger } from '@hookline/service-kit';
import { extractKafkaContext, linkFromTraceparent, traceparentOf, tracer } from '@hookline/telemetry';
import type { KafkaMessage } from 'kafkajs';
import { payloadBytes, type DeliveryDoc, type DispatcherModels, type EventDoc } from '../store/models';
import type { SubscriberSource } from '../subscribers/subscriber-cache';
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
  /**
   * Runs a write to deliveries this replica holds so that it never overlaps an outcome write
   * (OutcomeWriter.exclusive); FerretDB can lose one of two concurrent updates of a document.
   */
  serialize?: <T>(write: () => Promise<T>) => Promise<T>;
  /** Told about storage failures of background work (readiness turns NOT_SERVING on timeouts). */
  onDependencyError?: (err: unknown) => void;
}

const DUPLICATE_KEY = 11000;

export class DeliveryEngine {
  private readonly queue: WorkQueue<Job>;
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  private stopped = false;
  /** Deliveries this replica holds (queued or in flight), by delivery id. */
  private readonly held = new Map<string, Job>();
  private lastRenewal = 0;
  /** Endpoints with due deliveries left in the database because their in-memory queue was full. */
  private readonly spilled = new Set<string>();
  private rescan = false;
  private readonly serialize: <T>(write: () => Promise<T>) => Promise<T>;

  constructor(
    private readonly models: DispatcherModels,
    private readonly subscribers: SubscriberSource,
    private readonly pipeline: DeliveryPipeline,
    private readonly opts: EngineOptions,
    private readonly log: Logger,
  ) {
    this.serialize = opts.serialize ?? ((write) => write());
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

  /**
   * Backpressure for the Kafka consumer: true once there is room for more intake, false after
   * `timeoutMs` without room (the caller heartbeats and asks again, or gives up when stopping).
   */
  waitForRoom(timeoutMs: number): Promise<boolean> {
    return this.queue.waitForRoom(timeoutMs);
  }

  /**
   * Records deliveries for a batch of Kafka records. Resolves once they are durable (the caller
   * then commits the offsets); throws if the registry or database is unavailable (the caller
   * must not commit, and Kafka redelivers).
   */
  async intake(messages: KafkaMessage[]): Promise<() => Promise<void>> {
    const now = Date.now();
    const events: EventData[] = [];
    // One consumer span per record, continuing the trace its producer put in the headers (no-op
    // spans while tracing is off). Ended once the deliveries are durable.
    const spans = new Map<string, Span>();
    for (const m of messages) {
      if (!m.value) continue;
      try {
        const r = eventsV1.EventRecord.decode(m.value);
        events.push({ id: r.eventId, workspaceId: r.workspaceId, type: r.eventType, createdAt: r.createTime ?? new Date(Number(m.timestamp)), payload: r.payload });
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
    const groups = new Map<string, EventData[]>();
    for (const e of events) {
      const k = `${e.workspaceId}\u0000${e.type}`;
      groups.set(k, [...(groups.get(k) ?? []), e]);
    }
    const leaseUntil = new Date(now + this.opts.leaseMs);
    const expiresAt = new Date(now + this.opts.retentionMs);
    const jobs: Job[] = [];
    const eventDocs: EventDoc[] = [];
    const ctxOf = (eventId: string): Context => trace.setSpan(ROOT_CONTEXT, spans.get(eventId)!);
    let inserted: Set<string>;
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
            for (const s of subs) {
              const delivery: DeliveryDoc = {
                _id: `${e.id}|${s.endpointId}`,
                eventId: e.id,
                workspaceId: e.workspaceId,
                endpointId: s.endpointId,
                eventType: e.type,
                eventCreatedAt: e.createdAt,
                state: 'pending',
                attemptCount: 0,
                nextAttemptAt: new Date(now),
                leaseOwner: this.opts.owner,
                leaseUntil,
                lastError: '',
                updatedAt: new Date(now),
                expiresAt,
                ...(traceparent ? { traceparent } : {}),
              };
              jobs.push({ endpointKey: `${e.workspaceId}|${s.endpointId}`, delivery, event: e, trace: { parent } });
            }
          }
        }),
      );
      await insertIgnoringDuplicates(this.models.events, eventDocs);
      inserted = await insertIgnoringDuplicates(this.models.deliveries, jobs.map((j) => j.delivery));
    } catch (err) {
      for (const span of spans.values()) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'intake failed; the record will be redelivered' });
      }
      throw err;
    } finally {
      for (const span of spans.values()) span.end();
    }
    // A delivery that already existed was written by an earlier run of this record: its owner
    // (or, once its lease lapses, the scheduler) takes care of it.
    return () => this.enqueue(jobs.filter((j) => inserted.has(j.delivery._id)));
  }

  startScheduler(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.schedulerIntervalMs);
  }

  private async tick(): Promise<void> {
    await this.renewLeases();
    await this.scan();
  }

  /** Queues leased jobs; those whose endpoint queue is full are released to the scheduler. */
  private async enqueue(jobs: Job[]): Promise<void> {
    const overflow: string[] = [];
    for (const j of jobs) {
      if (this.held.has(j.delivery._id)) continue;
      if (this.stopped || !this.queue.push(j)) {
        overflow.push(j.delivery._id);
        this.spilled.add(j.endpointKey);
        continue;
      }
      this.held.set(j.delivery._id, j);
    }
    if (overflow.length === 0) return;
    await this.release(overflow, new Date()).catch((err: unknown) => this.log.warn({ err, count: overflow.length }, 'could not release overflow deliveries; their leases will lapse'));
  }

  /** Gives leases back so any replica's scheduler may take the deliveries from `at`. */
  private async release(ids: string[], at: Date): Promise<void> {
    for (let i = 0; i < ids.length; i += 1000) {
      await this.models.deliveries.updateMany({ _id: { $in: ids.slice(i, i + 1000) }, leaseOwner: this.opts.owner }, { $set: { leaseOwner: '', leaseUntil: at } });
    }
  }

  /** Extends the leases of everything held in memory (every leaseMs / 3). */
  async renewLeases(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastRenewal < this.opts.leaseMs / 3) return;
    this.lastRenewal = now;
    const ids = [...this.held.keys()];
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
      const mine: DeliveryDoc[] = [];
      await Promise.all(
        due.map(async (d) => {
          const r = await this.models.deliveries.updateOne({ _id: d._id, state: 'pending', leaseUntil: d.leaseUntil }, { $set: { leaseOwner: this.opts.owner, leaseUntil } });
          if (r.modifiedCount === 1) mine.push({ ...d, leaseOwner: this.opts.owner, leaseUntil });
        }),
      );
      const events = mine.length === 0 ? [] : await this.models.events.find({ _id: { $in: [...new Set(mine.map((d) => d.eventId))] } }).lean<EventDoc[]>();
      const byId = new Map(events.map((e) => [e._id, e]));
      const jobs: Job[] = [];
      for (const d of mine) {
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

  private async runJob(job: Job): Promise<void> {
    try {
      await this.pipeline.run(job.delivery, job.event, job.trace);
    } catch (err) {
      // Storage or registry fault: the lease lapses and the scheduler retries the delivery.
      this.log.warn({ err, deliveryId: job.delivery._id }, 'delivery attempt not recorded; will be retried after the lease');
      this.opts.onDependencyError?.(err);
    } finally {
      this.held.delete(job.delivery._id);
      // Room again for this endpoint's deliveries left in the database: fetch them now, not next tick.
      if (this.spilled.has(job.endpointKey) && !this.stopped) void this.scan();
    }
  }

  /**
   * Graceful stop: no new work; queued deliveries are handed back at once; in-flight attempts
   * get up to `deadlineMs` to finish and be recorded; whatever is still running then is handed
   * back too (another replica may attempt it again: at-least-once, never lost, never stuck
   * behind a lease of a process that is gone).
   */
  async stop(deadlineMs: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const queued = this.queue.drainQueued();
    for (const j of queued) this.held.delete(j.delivery._id);
    await this.release(
      queued.map((j) => j.delivery._id),
      new Date(0),
    ).catch((err: unknown) => this.log.warn({ err }, 'could not hand back queued deliveries; their leases will lapse'));
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([this.queue.idle().then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), deadlineMs)))]);
    clearTimeout(timer);
    const running = [...this.held.keys()];
    if (running.length > 0) {
      await this.release(running, new Date(0)).catch((err: unknown) => this.log.warn({ err }, 'could not hand back in-flight deliveries; their leases will lapse'));
    }
    this.log.info({ handedBackQueued: queued.length, handedBackInFlight: running.length, finishedInTime: finished }, 'delivery engine stopped');
  }
}

/** insertMany that treats "already there" as success; returns the ids this call inserted. */
async function insertIgnoringDuplicates<T extends { _id: string }>(model: { insertMany(docs: T[], opts: object): Promise<unknown> }, docs: T[]): Promise<Set<string>> {
  const ids = new Set(docs.map((d) => d._id));
  if (docs.length === 0) return ids;
  try {
    await model.insertMany(docs, { ordered: false, lean: true });
  } catch (err) {
    const writeErrors = (err as { writeErrors?: { code?: number; err?: { code?: number; index?: number }; index?: number }[] }).writeErrors;
    if (!writeErrors || writeErrors.some((w) => (w.code ?? w.err?.code) !== DUPLICATE_KEY)) throw err;
    for (const w of writeErrors) {
      const i = w.index ?? w.err?.index;
      if (i !== undefined) ids.delete(docs[i]!._id);
    }
  }
  return ids;
}

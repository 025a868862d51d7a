// Turns Kafka records into durable deliveries and runs them:
//   intake:    record → (subscribers) → events + deliveries written (leased to this replica)
//              → offsets committed → work queue.
//   scheduler: due retries and deliveries whose lease lapsed (a replica died) → lease → queue.
// Offsets are committed only after the deliveries are in the database, so a crash at any point
// redoes work (duplicates possible) but never loses it.
import { eventsV1 } from '@hookline/proto';
import type { Logger } from '@hookline/service-kit';
import type { KafkaMessage } from 'kafkajs';
import { payloadBytes, type DeliveryDoc, type DispatcherModels, type EventDoc } from '../store/models';
import type { SubscriberSource } from '../subscribers/subscriber-cache';
import type { DeliveryPipeline, EventData } from './pipeline';
import { WorkQueue, type WorkItem } from './work-queue';

interface Job extends WorkItem {
  delivery: DeliveryDoc;
  event: EventData;
}

export interface EngineOptions {
  owner: string;
  leaseMs: number;
  retentionMs: number;
  maxInFlight: number;
  maxInFlightPerEndpoint: number;
  schedulerIntervalMs: number;
}

const DUPLICATE_KEY = 11000;

export class DeliveryEngine {
  private readonly queue: WorkQueue<Job>;
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  private stopped = false;

  constructor(
    private readonly models: DispatcherModels,
    private readonly subscribers: SubscriberSource,
    private readonly pipeline: DeliveryPipeline,
    private readonly opts: EngineOptions,
    private readonly log: Logger,
  ) {
    this.queue = new WorkQueue<Job>(opts.maxInFlight, opts.maxInFlightPerEndpoint, opts.maxInFlight * 8, (job) => this.runJob(job));
  }

  get load(): { inFlight: number; queued: number } {
    return this.queue.size;
  }

  /**
   * Records deliveries for a batch of Kafka records. Resolves once they are durable (the caller
   * then commits the offsets); throws if the registry or database is unavailable (the caller
   * must not commit, and Kafka redelivers).
   */
  async intake(messages: KafkaMessage[]): Promise<() => void> {
    await this.queue.waitForRoom();
    const now = Date.now();
    const events: EventData[] = [];
    for (const m of messages) {
      if (!m.value) continue;
      try {
        const r = eventsV1.EventRecord.decode(m.value);
        events.push({ id: r.eventId, workspaceId: r.workspaceId, type: r.eventType, createdAt: r.createTime ?? new Date(Number(m.timestamp)), payload: r.payload });
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
    await Promise.all(
      [...groups.values()].map(async (group) => {
        const first = group[0]!;
        const subs = await this.subscribers.resolve(first.workspaceId, first.type);
        if (subs.length === 0) return;
        for (const e of group) {
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
            };
            jobs.push({ endpointKey: `${e.workspaceId}|${s.endpointId}`, delivery, event: e });
          }
        }
      }),
    );
    await insertIgnoringDuplicates(this.models.events, eventDocs);
    const inserted = await insertIgnoringDuplicates(this.models.deliveries, jobs.map((j) => j.delivery));
    // A delivery that already existed was written by an earlier run of this record: its owner
    // (or, once its lease lapses, the scheduler) takes care of it.
    return () => {
      for (const j of jobs) if (inserted.has(j.delivery._id)) this.queue.push(j);
    };
  }

  startScheduler(): void {
    this.timer = setInterval(() => void this.scan(), this.opts.schedulerIntervalMs);
  }

  /** Leases due deliveries (retries, and work abandoned by a replica that died) and queues them. */
  async scan(): Promise<number> {
    if (this.scanning || this.stopped) return 0;
    this.scanning = true;
    let claimed = 0;
    try {
      const now = new Date();
      const room = Math.max(this.opts.maxInFlight * 4 - this.queue.size.queued, 0);
      if (room === 0) return 0;
      const due = await this.models.deliveries
        .find({ state: 'pending', nextAttemptAt: { $lte: now }, leaseUntil: { $lte: now } })
        .sort({ nextAttemptAt: 1 })
        .limit(Math.min(room, 500))
        .lean<DeliveryDoc[]>();
      if (due.length === 0) return 0;
      const leaseUntil = new Date(now.getTime() + this.opts.leaseMs);
      const mine: DeliveryDoc[] = [];
      await Promise.all(
        due.map(async (d) => {
          const r = await this.models.deliveries.updateOne({ _id: d._id, state: 'pending', leaseUntil: d.leaseUntil }, { $set: { leaseOwner: this.opts.owner, leaseUntil } });
          if (r.modifiedCount === 1) mine.push({ ...d, leaseOwner: this.opts.owner, leaseUntil });
        }),
      );
      const events = await this.models.events.find({ _id: { $in: [...new Set(mine.map((d) => d.eventId))] } }).lean<EventDoc[]>();
      const byId = new Map(events.map((e) => [e._id, e]));
      for (const d of mine) {
        const e = byId.get(d.eventId);
        if (!e) {
          await this.models.deliveries.updateOne({ _id: d._id, leaseOwner: this.opts.owner }, { $set: { state: 'failed', lastError: 'event expired before delivery', leaseOwner: '', leaseUntil: new Date(0) } });
          continue;
        }
        this.queue.push({
          endpointKey: `${d.workspaceId}|${d.endpointId}`,
          delivery: d,
          event: { id: e._id, workspaceId: e.workspaceId, type: e.eventType, createdAt: e.createdAt, payload: payloadBytes(e.payload) },
        });
        claimed++;
      }
    } catch (err) {
      this.log.warn({ err }, 'scheduler scan failed; retrying next tick');
    } finally {
      this.scanning = false;
    }
    return claimed;
  }

  private async runJob(job: Job): Promise<void> {
    try {
      await this.pipeline.run(job.delivery, job.event);
    } catch (err) {
      // Storage or registry fault: the lease lapses and the scheduler retries the delivery.
      this.log.warn({ err, deliveryId: job.delivery._id }, 'delivery attempt not recorded; will be retried after the lease');
    }
  }

  /** Stops taking work; waits for in-flight attempts up to the deadline; hands back the rest. */
  async stop(deadlineMs: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const handBack = this.queue.drainQueued();
    if (handBack.length > 0) {
      await this.models.deliveries
        .updateMany({ _id: { $in: handBack.map((j) => j.delivery._id) }, leaseOwner: this.opts.owner }, { $set: { leaseOwner: '', leaseUntil: new Date(0) } })
        .catch((err: unknown) => this.log.warn({ err }, 'could not hand back queued deliveries; their leases will lapse'));
    }
    await Promise.race([this.queue.idle(), new Promise((r) => setTimeout(r, deadlineMs))]);
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

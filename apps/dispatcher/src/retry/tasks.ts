// A delivery task: one event to one endpoint, with what is needed to attempt it without reading
// the database (payload included). Tasks straight from the events topic live in memory; tasks
// that wait (a retry, an endpoint's overflow, a manual retry, work handed back at shutdown) are
// records on a retry tier topic.
import { deliveryV1 } from '@hookline/proto';
import { CoalescingSender } from '@hookline/kafka';
import type { IHeaders, KafkaMessage, Message, Producer } from 'kafkajs';
import type { RetryTiers } from './retry-tiers';

export interface EventData {
  id: string;
  workspaceId: string;
  type: string;
  createdAt: Date;
  payload: Buffer;
}

export interface Task {
  event: EventData;
  endpointId: string;
  /** Attempts already made; the next is attemptsMade + 1. */
  attemptsMade: number;
  /** Not attempted before this time (ms since the epoch). */
  dueAt: number;
  /** Its Kafka record was read again (rebalance, crash): look for a success before attempting. */
  verify: boolean;
  /** W3C traceparent of the intake that created the delivery (only with tracing on). */
  traceparent?: string;
}

/** `${eventId}|${endpointId}`: one delivery per pair. */
export const deliveryIdOf = (t: Pick<Task, 'event' | 'endpointId'>): string => `${t.event.id}|${t.endpointId}`;

export const DUE_HEADER = 'hookline-due-at';
export const ATTEMPT_HEADER = 'hookline-attempt';

export function encodeTask(t: Task): Message {
  const value = deliveryV1.DeliveryTask.encode({
    eventId: t.event.id,
    workspaceId: t.event.workspaceId,
    eventType: t.event.type,
    payload: t.event.payload,
    eventCreateTime: t.event.createdAt,
    endpointId: t.endpointId,
    attemptsMade: t.attemptsMade,
    dueTime: new Date(t.dueAt),
    verify: t.verify,
    traceparent: t.traceparent ?? '',
  }).finish();
  // Keyed by delivery, not endpoint: one endpoint's backlog spreads over every partition, so all
  // replicas share its drain (each within its own per-endpoint limit).
  return { key: deliveryIdOf(t), value: Buffer.from(value), headers: { [DUE_HEADER]: String(t.dueAt), [ATTEMPT_HEADER]: String(t.attemptsMade + 1) } };
}

const header = (headers: IHeaders | undefined, name: string): string | undefined => {
  const v = headers?.[name];
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined ? undefined : one.toString();
};

/** The record's due time from its header (no decoding); 0 when absent (due now). */
export function dueOf(m: Pick<KafkaMessage, 'headers'>): number {
  const v = Number(header(m.headers, DUE_HEADER));
  return Number.isFinite(v) ? v : 0;
}

/** Throws on a record that is not a DeliveryTask. */
export function decodeTask(m: Pick<KafkaMessage, 'value' | 'headers'>): Task {
  if (!m.value) throw new Error('empty record');
  const r = deliveryV1.DeliveryTask.decode(m.value);
  if (!r.eventId || !r.workspaceId || !r.endpointId) throw new Error('record lacks event, workspace or endpoint id');
  return {
    event: { id: r.eventId, workspaceId: r.workspaceId, type: r.eventType, createdAt: r.eventCreateTime ?? new Date(0), payload: Buffer.from(r.payload) },
    endpointId: r.endpointId,
    attemptsMade: r.attemptsMade,
    dueAt: r.dueTime?.getTime() ?? dueOf(m),
    verify: r.verify,
    ...(r.traceparent ? { traceparent: r.traceparent } : {}),
  };
}

/** Where waiting tasks go. Resolves once the broker has them (acks = all): the task is durable. */
export interface Waiting {
  wait(tasks: Task[]): Promise<void>;
}

/** Bytes per produce request (the broker refuses record batches above 1 MiB by default). */
const MAX_SEND_BYTES = 900_000;
const RECORD_OVERHEAD = 256;

/** Produces tasks to the tier that fits each one's wait, sharing produce requests per tier. */
export class TierSink implements Waiting {
  private readonly senders = new Map<string, CoalescingSender>();

  constructor(
    private readonly producer: Pick<Producer, 'send'>,
    private readonly tiers: RetryTiers,
    private readonly now: () => number = Date.now,
  ) {}

  async wait(tasks: Task[]): Promise<void> {
    if (tasks.length === 0) return;
    const now = this.now();
    const byTopic = new Map<string, Task[]>();
    for (const t of tasks) {
      const topic = this.tiers.forWait(t.dueAt - now).topic;
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), t]);
    }
    await Promise.all(
      [...byTopic].map(([topic, group]) => {
        let sender = this.senders.get(topic);
        if (!sender) this.senders.set(topic, (sender = new CoalescingSender(this.producer, topic, MAX_SEND_BYTES)));
        // Cut at ~900 KB per entry: one entry always goes in one request, whatever its size.
        const sends: Promise<void>[] = [];
        let chunk: Message[] = [];
        let bytes = 0;
        for (const t of group) {
          const n = t.event.payload.length + RECORD_OVERHEAD;
          if (chunk.length > 0 && bytes + n > MAX_SEND_BYTES) {
            sends.push(sender.send(chunk, bytes).acknowledged);
            chunk = [];
            bytes = 0;
          }
          chunk.push(encodeTask(t));
          bytes += n;
        }
        if (chunk.length > 0) sends.push(sender!.send(chunk, bytes).acknowledged);
        return Promise.all(sends);
      }),
    );
  }
}

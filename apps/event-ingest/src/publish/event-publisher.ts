// Produces accepted events to webhooks.events.v1. Resolves only after every in-sync replica
// acknowledged (acks=-1, idempotent producer), so "accepted" means durable.
//
// Concurrent calls share produce requests. kafkajs' idempotent producer sends one produce request
// per broker at a time (a broker lock guards the sequence numbers), so 32 concurrent
// PublishEvent calls each sending their own one-record request queued behind each other at one
// round trip apiece (~1 ms): ~1,000 events/s whatever the parallelism. Records that arrive while
// a request is in flight go out together in the next one.
import type { Producer } from 'kafkajs';
import { CoalescingSender } from '@hookline/kafka';
import { SpanKind } from '@opentelemetry/api';
import { eventsV1 } from '@hookline/proto';
import { injectKafkaHeaders, withSpan } from '@hookline/telemetry';

export interface AcceptedEvent {
  eventId: string;
  workspaceId: string;
  eventType: string;
  payload: Buffer;
  createdAt: Date;
}

export interface EventSink {
  /** Resolves once all are acknowledged; on failure throws PartialPublishError. */
  publish(events: AcceptedEvent[]): Promise<void>;
}

/** The first `acknowledged` events (in the given order) are durable; the rest are not. */
export class PartialPublishError extends Error {
  constructor(
    readonly acknowledged: number,
    cause: unknown,
  ) {
    super(`the broker acknowledged ${acknowledged} events, then failed`, { cause });
    this.name = 'PartialPublishError';
  }
}

export class KafkaEventSink implements EventSink {
  private readonly sender: CoalescingSender;

  constructor(
    producer: Producer,
    private readonly topic: string,
    /**
     * How long a publish waits for the acknowledgement (default 8 s). kafkajs alone keeps retrying
     * a dead broker for ~20 s (its connect retries times the producer's), past most callers'
     * deadlines: they would see DEADLINE_EXCEEDED instead of a clear UNAVAILABLE.
     */
    private readonly timeoutMs = 8_000,
  ) {
    this.sender = new CoalescingSender(producer, topic, MAX_SEND_BYTES);
  }

  async publish(events: AcceptedEvent[]): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    // One send carries one record batch per partition, and the broker refuses a batch above the
    // topic's max.message.bytes (1 MiB by default): a PublishEvents call of a few large payloads
    // would otherwise fail as a whole, on every retry. So sends are cut at ~900 KB each.
    let acknowledged = 0;
    for (const chunk of chunksBySize(events, MAX_SEND_BYTES)) {
      // One producer span per chunk (it includes the wait for a shared request); every record
      // carries its W3C trace context in its headers, so the dispatcher continues this trace (the
      // kafkajs instrumentation, when loaded, adds its own span beneath the shared send and
      // re-injects: same trace either way).
      await withSpan(
        `${this.topic} publish`,
        { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'kafka', 'messaging.operation.type': 'send', 'messaging.destination.name': this.topic, 'messaging.batch.message_count': chunk.length } },
        async () => {
          const messages = chunk.map((e) => ({
            // Keyed by workspace: one workspace's events stay in order on one partition.
            key: e.workspaceId,
            value: Buffer.from(
              eventsV1.EventRecord.encode({ eventId: e.eventId, workspaceId: e.workspaceId, eventType: e.eventType, payload: e.payload, createTime: e.createdAt }).finish(),
            ),
            headers: injectKafkaHeaders({ 'event-type': e.eventType }),
          }));
          const send = this.sender.send(messages, chunkBytes(chunk));
          try {
            await withTimeout(send.acknowledged, deadline - Date.now(), send.withdraw);
          } catch (err) {
            throw new PartialPublishError(acknowledged, err);
          }
        },
      );
      acknowledged += chunk.length;
    }
  }
}

/** Bytes per produce request; a single larger event still goes alone (MAX_PAYLOAD_BYTES caps it). */
const MAX_SEND_BYTES = 900_000;
/** Record framing, key, ids, header: generous upper bound per event besides its payload. */
const RECORD_OVERHEAD = 1_024;

const chunkBytes = (events: AcceptedEvent[]) => events.reduce((n, e) => n + e.payload.length + RECORD_OVERHEAD, 0);

function* chunksBySize(events: AcceptedEvent[], maxBytes: number): Generator<AcceptedEvent[]> {
  let chunk: AcceptedEvent[] = [];
  let size = 0;
  for (const e of events) {
    const n = e.payload.length + RECORD_OVERHEAD;
    if (chunk.length > 0 && size + n > maxBytes) {
      yield chunk;
      chunk = [];
      size = 0;
    }
    chunk.push(e);
    size += n;
  }
  if (chunk.length > 0) yield chunk;
}

/**
 * Rejects after `ms` if `p` has not settled, first calling `onTimeout`. A send already in a
 * request cannot be cancelled and may still succeed later; callers treat a timeout as "maybe
 * written" (see Ingestor.abandon).
 */
function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`no acknowledgement from the broker within the publish timeout`));
    }, Math.max(ms, 0));
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

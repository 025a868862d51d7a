// Produces accepted events to webhooks.events.v1. Resolves only after every in-sync replica
// acknowledged (acks=-1, idempotent producer), so "accepted" means durable.
import type { Producer } from 'kafkajs';
import { eventsV1 } from '@hookline/proto';

export interface AcceptedEvent {
  eventId: string;
  workspaceId: string;
  eventType: string;
  payload: Buffer;
  createdAt: Date;
}

export interface EventSink {
  publish(events: AcceptedEvent[]): Promise<void>;
}

export class KafkaEventSink implements EventSink {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
  ) {}

  async publish(events: AcceptedEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: events.map((e) => ({
        // Keyed by workspace: one workspace's events stay in order on one partition.
        key: e.workspaceId,
        value: Buffer.from(
          eventsV1.EventRecord.encode({ eventId: e.eventId, workspaceId: e.workspaceId, eventType: e.eventType, payload: e.payload, createTime: e.createdAt }).finish(),
        ),
        headers: { 'event-type': e.eventType },
      })),
    });
  }
}

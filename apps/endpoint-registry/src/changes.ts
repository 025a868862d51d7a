// Publishes endpoint changes to the compacted webhooks.endpoint-changes.v1 topic so dispatchers
// drop cached subscribers. Best effort after the database write: dispatchers also expire their
// cache (30 s by default), so a lost change message delays, never loses, an update.
import type { Producer } from 'kafkajs';
import { endpointsV1 } from '@hookline/proto';
import type { Logger } from '@hookline/service-kit';

export interface ChangeNotifier {
  endpointChanged(change: { workspaceId: string; endpointId: string; version: number; deleted: boolean }): Promise<void>;
}

export class KafkaChangeNotifier implements ChangeNotifier {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly log: Logger,
  ) {}

  async endpointChanged(change: { workspaceId: string; endpointId: string; version: number; deleted: boolean }): Promise<void> {
    const value = endpointsV1.EndpointChangedEvent.encode({ ...change, version: String(change.version), changeTime: new Date() }).finish();
    try {
      await this.producer.send({
        topic: this.topic,
        acks: -1,
        messages: [{ key: `${change.workspaceId}/${change.endpointId}`, value: Buffer.from(value) }],
      });
    } catch (err) {
      this.log.warn({ err, endpointId: change.endpointId }, 'endpoint change not published; dispatcher caches will expire instead');
    }
  }
}

// Operational events: things an operator (or the product UI, via a consumer) must hear about,
// published as JSON records to their own topic (KAFKA_TOPIC_OPERATIONS, default
// webhooks.operations.v1) and logged at warn. Best effort after the durable change they
// describe (the registry already holds enabled=false and the reason): a lost record costs a
// notification, never a delivery. Concurrent replicas may publish the same notice twice;
// consumers dedupe on `id`.
import type { Producer } from 'kafkajs';
import { timeOrderedId, type Logger } from '@hookline/service-kit';

export interface EndpointDisabledNotice {
  workspaceId: string;
  endpointId: string;
  /** `gone`: the endpoint answered 410. `failing`: no success for the auto-disable period. */
  reason: 'gone' | 'failing';
  /** Start of the failure streak (auto-disable only). */
  failingSince?: Date;
  at: Date;
}

/** What the delivery pipeline needs to say "an endpoint was disabled". */
export interface OperationalEvents {
  endpointDisabled(notice: EndpointDisabledNotice): Promise<void>;
}

/** JSON shape on the operations topic (no proto message yet: see the issue report). */
export interface EndpointDisabledRecord {
  id: string;
  type: 'endpoint.disabled';
  workspace_id: string;
  endpoint_id: string;
  reason: 'gone' | 'failing';
  failing_since: string | null;
  time: string;
  source: string;
}

export class KafkaOperationalEvents implements OperationalEvents {
  constructor(
    private readonly producer: Pick<Producer, 'send'>,
    private readonly topic: string,
    private readonly source: string,
    private readonly log: Logger,
  ) {}

  async endpointDisabled(n: EndpointDisabledNotice): Promise<void> {
    const record: EndpointDisabledRecord = {
      id: timeOrderedId('op', n.at.getTime()),
      type: 'endpoint.disabled',
      workspace_id: n.workspaceId,
      endpoint_id: n.endpointId,
      reason: n.reason,
      failing_since: n.failingSince ? n.failingSince.toISOString() : null,
      time: n.at.toISOString(),
      source: this.source,
    };
    this.log.warn({ operational: record }, n.reason === 'gone' ? 'endpoint disabled: it answered 410 Gone' : 'endpoint auto-disabled: failing without a success for the configured period');
    try {
      await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key: `${n.workspaceId}/${n.endpointId}`, value: JSON.stringify(record) }] });
    } catch (err) {
      this.log.warn({ err, endpointId: n.endpointId }, 'operational event not published (the endpoint is disabled regardless)');
    }
  }
}

// Ingest metrics (OTel; Prometheus names in the README): one count per event by result
// (accepted | duplicate | rejected) and transport (grpc | kafka). No-ops while metrics are off.
import type { Meter } from '@opentelemetry/api';

export type IngestResult = 'accepted' | 'duplicate' | 'rejected';
export type Transport = 'grpc' | 'kafka';

export interface IngestCounters {
  /** `code`: the gRPC status name of a rejection (INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, …). */
  events(result: IngestResult, transport: Transport, count?: number, code?: string): void;
}

export const NO_INGEST_METRICS: IngestCounters = { events: () => undefined };

export function ingestMetrics(meter: Meter): IngestCounters {
  const events = meter.createCounter('hookline.ingest.events', { description: 'Events received by event-ingest, by result (accepted, duplicate, rejected) and transport (grpc, kafka)' });
  return {
    events(result, transport, count = 1, code) {
      if (count > 0) events.add(count, code ? { result, transport, code } : { result, transport });
    },
  };
}

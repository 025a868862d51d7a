// Dispatcher metrics (OTel instruments, scraped as Prometheus text on METRICS_PORT; names and
// labels are listed in the README's Operations section). Without a meter provider every
// instrument is the API's no-op.
import type { Attributes, Meter, ObservableResult } from '@opentelemetry/api';

export type DeliveryOutcome = 'succeeded' | 'retry' | 'failed';

/** `2xx`…`5xx` for an HTTP answer, `error` when there was none (timeout, refused, TLS, reset). */
export const statusClass = (status: number | undefined): string => (status ? `${Math.floor(status / 100)}xx` : 'error');

export interface DeliveryMetrics {
  /** One per attempt, by what the attempt decided and the answer's status class. */
  attempt(outcome: DeliveryOutcome, status: number | undefined, durationMs: number): void;
  /** Publish (event created) to successful delivery. */
  delivered(lagMs: number): void;
  retryScheduled(): void;
  endpointDisabled(reason: 'gone' | 'failing'): void;
  /** Latest lag of a partition this replica consumes (records behind the high watermark): on a retry tier, the retries waiting there. */
  consumerLag(topic: string, partition: number, lag: number): void;
  /** Reads the engine's parked deliveries and open circuits at each scrape. */
  watchEngine(read: () => { parked: number; openCircuits: number; heldBytes: number; earlyRetries: number }): void;
}

export const NO_DELIVERY_METRICS: DeliveryMetrics = {
  attempt: () => undefined,
  delivered: () => undefined,
  retryScheduled: () => undefined,
  endpointDisabled: () => undefined,
  consumerLag: () => undefined,
  watchEngine: () => undefined,
};

// Seconds. An attempt is bounded by 10 s; delivery lag spans a first-try success (~ms) to the last
// retry (~32 h of schedule).
const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 7200, 6 * 3600, 24 * 3600, 48 * 3600];

export function deliveryMetrics(meter: Meter): DeliveryMetrics {
  const deliveries = meter.createCounter('hookline.deliveries', { description: 'Delivery attempts by outcome (succeeded, retry, failed) and HTTP status class (2xx..5xx, error)' });
  const attemptDuration = meter.createHistogram('hookline.delivery.attempt.seconds', { unit: 's', description: 'Duration of one HTTP attempt (connect to body read)', advice: { explicitBucketBoundaries: ATTEMPT_BUCKETS } });
  const lag = meter.createHistogram('hookline.delivery.lag.seconds', { unit: 's', description: 'From the event being accepted by event-ingest to its successful delivery', advice: { explicitBucketBoundaries: LAG_BUCKETS } });
  const retries = meter.createCounter('hookline.retries.scheduled', { description: 'Retries scheduled after a failed attempt' });
  const disabled = meter.createCounter('hookline.endpoints.disabled', { description: 'Endpoints disabled by the dispatcher, by reason (gone: 410, failing: auto-disable)' });
  const consumerLag = meter.createObservableGauge('hookline.consumer.lag', { description: 'Records not yet taken in, per topic and partition this replica owns (as of its last batch): on the events topic, events waiting; on a retry tier topic, retries waiting' });

  // Parked deliveries were taken off their tier, so the tier's consumer lag no longer counts them.
  const parked = meter.createObservableGauge('hookline.deliveries.parked', { description: 'Retries of endpoints whose circuit is open, waiting in this replica\'s memory for a probe to succeed (their tier records uncommitted)' });
  const openCircuits = meter.createObservableGauge('hookline.circuits.open', { description: 'Endpoints whose circuit is open on this replica (one probe attempt per BREAKER_PROBE_MS)' });
  const heldBytes = meter.createObservableGauge('hookline.deliveries.held.bytes', { unit: 'By', description: 'Payload bytes of the deliveries this replica holds in memory (queued, in flight, being recorded); intake waits at MAX_HELD_MB' });
  const earlyRetries = meter.createObservableGauge('hookline.retries.early', { description: 'Retries of failed probes this replica will attempt as soon as their endpoint answers, instead of at their backoff' });

  const lags = new Map<string, { attrs: Attributes; lag: number }>();
  consumerLag.addCallback((r: ObservableResult) => {
    for (const { attrs, lag: v } of lags.values()) r.observe(v, attrs);
  });

  return {
    attempt(outcome, status, durationMs) {
      const attrs = { outcome, status_class: statusClass(status) };
      deliveries.add(1, attrs);
      attemptDuration.record(durationMs / 1000, attrs);
    },
    delivered: (ms) => lag.record(Math.max(ms, 0) / 1000),
    retryScheduled: () => retries.add(1),
    endpointDisabled: (reason) => disabled.add(1, { reason }),
    consumerLag(topic, partition, value) {
      lags.set(`${topic}/${partition}`, { attrs: { topic, partition }, lag: value });
    },
    watchEngine(read) {
      parked.addCallback((r) => r.observe(read().parked));
      openCircuits.addCallback((r) => r.observe(read().openCircuits));
      heldBytes.addCallback((r) => r.observe(read().heldBytes));
      earlyRetries.addCallback((r) => r.observe(read().earlyRetries));
    },
  };
}

// W3C trace context across Kafka records: `traceparent` (and `tracestate`, `baggage`) headers,
// injected by the producer and extracted by the consumer. With tracing off no propagator is
// registered and both are no-ops.
import { context, propagation, ROOT_CONTEXT, trace, type Context, type Link, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';

/** kafkajs' IHeaders, without importing kafkajs here. */
export type KafkaHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

const setter: TextMapSetter<KafkaHeaders> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const getter: TextMapGetter<KafkaHeaders | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => {
    const v = carrier?.[key];
    if (v === undefined) return undefined;
    const first = Array.isArray(v) ? v[0] : v;
    return first === undefined ? undefined : first.toString();
  },
};

/** Adds the trace context of `ctx` (default: the active one) to a record's headers; returns them. */
export function injectKafkaHeaders(headers: KafkaHeaders = {}, ctx: Context = context.active()): KafkaHeaders {
  propagation.inject(ctx, headers, setter);
  return headers;
}

/** The remote context carried by a record's headers (ROOT_CONTEXT-based, so nothing local leaks in). */
export function extractKafkaContext(headers: KafkaHeaders | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, headers, getter);
}

/** A string form of a context (W3C traceparent) to store with durable work, e.g. a delivery; '' when not sampled/none. */
export function traceparentOf(ctx: Context = context.active()): string {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ?? '';
}

/** A link to the trace a stored traceparent names (for work resumed later in a new trace: retries). */
export function linkFromTraceparent(traceparent: string | undefined): Link[] {
  if (!traceparent) return [];
  const sc = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, { traceparent }));
  return sc ? [{ context: sc }] : [];
}

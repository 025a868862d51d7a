// Our own spans, where no library instrumentation covers the work (the delivery pipeline, the
// Kafka hand-off into the dispatcher's work queue, the HTTP attempt).
import { context, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type SpanKind } from '@opentelemetry/api';

export const tracer = () => trace.getTracer('hookline');

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  links?: Link[];
  /** Parent context; default the active one. */
  parent?: Context;
  /** Start a new trace (links carry the relation). */
  root?: boolean;
}

/**
 * Runs `fn` inside a new active span; records a thrown error on the span (status ERROR) and
 * rethrows it. The span ends when `fn` settles.
 */
export async function withSpan<T>(name: string, opts: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: opts.kind, attributes: opts.attributes, links: opts.links, root: opts.root }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.name : 'error' });
    throw err;
  } finally {
    span.end();
  }
}

/** trace_id / span_id of the active span, for log lines (pino mixin); {} when there is none. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

// JSON logs (pino). Secrets, signatures and payload bodies are redacted by path wherever they
// could appear; code must still never log them on purpose. Every line logged inside a span
// carries its trace_id and span_id (pino mixin), so a log line leads to its trace.
import pino from 'pino';
import { activeTraceIds } from '@hookline/telemetry';

export type Logger = pino.Logger;

export const REDACT_PATHS = [
  'secret',
  'secrets',
  '*.secret',
  '*.secrets',
  'signature',
  '*.signature',
  'headers["x-signature-256"]',
  'headers["webhook-signature"]',
  'headers.authorization',
  '*.headers["x-signature-256"]',
  '*.headers["webhook-signature"]',
  '*.headers.authorization',
  'requestHeaders["x-signature-256"]',
  'requestHeaders["webhook-signature"]',
  '*.requestHeaders["x-signature-256"]',
  '*.requestHeaders["webhook-signature"]',
  'payload',
  '*.payload',
  'body',
  '*.body',
  'uri',
  '*.uri',
];

/**
 * Errors are logged by their name, message, stack, code and labels, and their cause, nothing else:
 * driver errors carry the documents they failed to write (a failed insertMany of attempt records
 * carries every request's signature header), which no redaction path can follow.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { code?: unknown; codeName?: unknown; errorLabels?: unknown; errorLabelSet?: unknown };
  const out: Record<string, unknown> = { type: e.name, message: e.message, stack: e.stack };
  if (e.code !== undefined) out.code = e.code;
  if (typeof e.codeName === 'string') out.codeName = e.codeName;
  const labels = Array.isArray(e.errorLabels) ? e.errorLabels : e.errorLabelSet instanceof Set ? [...e.errorLabelSet] : undefined;
  if (labels && labels.length > 0) out.errorLabels = labels;
  const inner = e.cause ?? (e as { errorResponse?: unknown }).errorResponse;
  if (inner instanceof Error && depth < 3) out.cause = serializeError(inner, depth + 1);
  return out;
}

export function createLogger(service: string, level = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
      mixin: activeTraceIds,
    },
    destination,
  );
}

/**
 * A child logger that writes fields as they are, for hot lines whose fields are only ids, numbers
 * and the service's own words (the dispatcher's line per attempt). Redaction's wildcard paths
 * (`*.secret`, `*.headers…`) run on every field of every line: ~17 µs a line against ~1.7 µs
 * without, ~5 % of the dispatcher's CPU at full load. Never log a request, a document or an
 * error through it.
 */
export function unredacted(log: Logger): Logger {
  return log.child({}, { redact: [] });
}

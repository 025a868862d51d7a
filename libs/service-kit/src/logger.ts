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

export function createLogger(service: string, level = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
      mixin: activeTraceIds,
    },
    destination,
  );
}

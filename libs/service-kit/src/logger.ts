// JSON logs (pino). Secrets, signatures and payload bodies are redacted by path wherever they
// could appear; code must still never log them on purpose.
import pino from 'pino';

export type Logger = pino.Logger;

export const REDACT_PATHS = [
  'secret',
  'secrets',
  '*.secret',
  '*.secrets',
  'headers["x-signature-256"]',
  'headers["webhook-signature"]',
  '*.headers["x-signature-256"]',
  '*.headers["webhook-signature"]',
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
    },
    destination,
  );
}

// First import of main.ts: OpenTelemetry before grpc-js, kafkajs and mongoose are loaded (the
// library instrumentations patch them as they are required). Reads the OTEL_* and METRICS_* keys
// itself, as it must run before config.ts can be imported; config.ts checks the same keys and
// refuses to start on a bad value.
import { initTelemetry } from '@hookline/telemetry';

initTelemetry({ serviceName: 'event-ingest' });

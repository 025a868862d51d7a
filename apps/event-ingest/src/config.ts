// The only reader of process.env in event-ingest. See the README's configuration table.
import { EnvReader, readGrpcClientSecurity, readServiceSettings, type GrpcClientSecurity, type ServiceSettings } from '@hookline/service-kit';
import { readTelemetrySettings } from '@hookline/telemetry';
import { readKafkaSettings, type KafkaSettings } from '@hookline/kafka';

export interface IngestConfig extends ServiceSettings {
  /** Prometheus scrape port (GET /metrics); undefined = no endpoint. 0 picks a free port. */
  metricsPort: number | undefined;
  metricsHost: string;
  kafka: KafkaSettings;
  /** host:port of endpoint-registry (event-type catalog). */
  registryAddress: string;
  /** TLS and this service's own identity (client certificate or bearer token) towards endpoint-registry. */
  registryClient: GrpcClientSecurity;
  /** Payloads above this many bytes are refused. Default 256 KiB. */
  maxPayloadBytes: number;
  /** How long an idempotency key is remembered. Default 24 h. */
  idempotencyWindowMs: number;
  /** How long a fetched event type is trusted before it is fetched again. Default 30 s. */
  catalogTtlMs: number;
  /** How long a publish waits for the broker's acknowledgement before answering UNAVAILABLE. Default 8 s. */
  publishTimeoutMs: number;
  /** Consume the ingest topic (KAFKA_TOPIC_INGEST). Default true. */
  kafkaIngestEnabled: boolean;
  /** Consumer group of the ingest topic. Default `event-ingest.<ingest topic>`. */
  kafkaIngestGroup: string;
}

/**
 * The broker refuses record batches above max.message.bytes (1 MiB by default); an event carries
 * its payload plus ~1 KiB of envelope, so payloads stop at 1,000,000 bytes unless the events topic
 * is configured for more.
 */
export const MAX_PAYLOAD_LIMIT = 1_000_000;

export function loadConfig(env: Record<string, string | undefined>): IngestConfig {
  const r = new EnvReader(env);
  // OTEL_* and METRICS_* (also read by instrument.ts, first thing): listed with every other problem.
  const { settings: telemetry, problems: telemetryProblems } = readTelemetrySettings(env, 'event-ingest');
  for (const p of telemetryProblems) r.problem(p);
  const config: IngestConfig = {
    ...readServiceSettings(r, { grpcPort: 50052, mongoDatabase: 'hookline_ingest' }),
    metricsPort: telemetry.metricsPort,
    metricsHost: telemetry.metricsHost,
    kafka: readKafkaSettings(r, 'event-ingest'),
    registryAddress: r.string('REGISTRY_ADDRESS', '127.0.0.1:50051'),
    registryClient: readGrpcClientSecurity(r, 'REGISTRY'),
    maxPayloadBytes: r.int('MAX_PAYLOAD_BYTES', 256 * 1024, { min: 1024, max: MAX_PAYLOAD_LIMIT }),
    idempotencyWindowMs: r.int('IDEMPOTENCY_WINDOW_SECONDS', 24 * 3600, { min: 60, max: 30 * 24 * 3600 }) * 1000,
    catalogTtlMs: r.int('CATALOG_CACHE_SECONDS', 30, { min: 1, max: 3600 }) * 1000,
    publishTimeoutMs: r.int('PUBLISH_TIMEOUT_SECONDS', 8, { min: 1, max: 120 }) * 1000,
    kafkaIngestEnabled: r.bool('KAFKA_INGEST_ENABLED', true),
    kafkaIngestGroup: '',
  };
  // Derived from the topic by default, so deployments (and test runs) with their own topics never
  // share a group: members of one group get partitions of every topic any member subscribed to.
  config.kafkaIngestGroup = r.string('KAFKA_INGEST_CONSUMER_GROUP', `event-ingest.${config.kafka.topics.ingest.name}`);
  r.done();
  return config;
}

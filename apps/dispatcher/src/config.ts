// The only reader of process.env in the dispatcher. See the README's configuration table.
import { EnvReader, readGrpcClientSecurity, readServiceSettings, type GrpcClientSecurity, type ServiceSettings } from '@hookline/service-kit';
import { readTelemetrySettings } from '@hookline/telemetry';
import { readKafkaSettings, type KafkaSettings } from '@hookline/kafka';
import { AllowList } from '@hookline/url-policy';
import { parseSchedule } from './delivery/retry-policy';

export interface DispatcherConfig extends ServiceSettings {
  /** Prometheus scrape port (GET /metrics); undefined = no endpoint. 0 picks a free port. */
  metricsPort: number | undefined;
  metricsHost: string;
  kafka: KafkaSettings;
  /** Consumer group shared by all dispatcher replicas. */
  consumerGroup: string;
  registryAddress: string;
  /** TLS and this service's own identity (client certificate or bearer token) towards endpoint-registry. */
  registryClient: GrpcClientSecurity;
  /** CIDRs and host names that may be targeted although not public. Empty in production. */
  targetAllowList: string[];
  /** Whole-attempt budget: connect, TLS, headers and body. Default 10 s (the product promise). */
  attemptTimeoutMs: number;
  /** Delays before each retry; the first attempt is immediate. */
  retrySchedule: number[];
  /** ± fraction of each delay, so synchronized failures do not retry in lockstep. Default 0.2. */
  retryJitter: number;
  /** Deliveries in flight at once, all endpoints. Default 256. */
  maxInFlight: number;
  /** Deliveries in flight to one endpoint (also its connection pool size). Default 16. */
  maxInFlightPerEndpoint: number;
  /** How often due retries are looked for. Default 1 s. */
  schedulerIntervalMs: number;
  /** How long a claimed delivery belongs to this replica before others may take it. Default 60 s. */
  leaseMs: number;
  /** How long resolved subscribers are trusted without a change notice. Default 30 s. */
  subscriberCacheMs: number;
  /** Response bodies kept in attempt records, in bytes. Default 16 KiB. */
  responseBodyLimit: number;
  /** How long attempts, events and finished deliveries are kept. Default 30 days. */
  retentionMs: number;
  /** Endpoints failing without a success for this long are disabled. Default 5 days. */
  autoDisableAfterMs: number;
  /** Deliveries waiting in memory per endpoint; beyond this they wait in the database. Default max(4 × MAX_IN_FLIGHT_PER_ENDPOINT, 64). */
  maxQueuedPerEndpoint: number;
  /** Topic for operational events (endpoint disabled: 410 or auto-disable), JSON records. Default webhooks.operations.v1. */
  operationsTopic: string;
  /** A delivery from Kafka not finished after this long is written to the database as pending work, so its record's offset can be committed. Default 2 s. */
  spillAfterMs: number;
  /** Kafka consumer session: how long a replica that died silently (SIGKILL) keeps its partitions. Default 30 s. */
  sessionTimeoutMs: number;
  /** SIGTERM to exit: in-flight attempts get what is left after the gRPC server and consumer stop. Default 20 s (runMain kills at 25 s). */
  shutdownDeadlineMs: number;
}

const DEFAULT_SCHEDULE = '5s,5m,30m,2h,5h,10h,10h';

export function loadConfig(env: Record<string, string | undefined>): DispatcherConfig {
  const r = new EnvReader(env);
  // OTEL_* and METRICS_* (also read by instrument.ts, first thing): listed with every other problem.
  const { settings: telemetry, problems: telemetryProblems } = readTelemetrySettings(env, 'dispatcher');
  for (const p of telemetryProblems) r.problem(p);
  const targetAllowList = r.list('TARGET_ALLOWLIST');
  for (const p of AllowList.validate(targetAllowList)) r.problem(`TARGET_ALLOWLIST: ${p}`);
  let retrySchedule: number[] = [];
  try {
    retrySchedule = parseSchedule(r.string('RETRY_SCHEDULE', DEFAULT_SCHEDULE));
  } catch (err) {
    r.problem(`RETRY_SCHEDULE: ${(err as Error).message}`);
  }
  const config: DispatcherConfig = {
    ...readServiceSettings(r, { grpcPort: 50053, mongoDatabase: 'hookline_dispatcher' }),
    metricsPort: telemetry.metricsPort,
    metricsHost: telemetry.metricsHost,
    kafka: readKafkaSettings(r, 'dispatcher'),
    consumerGroup: r.string('KAFKA_CONSUMER_GROUP', 'hookline-dispatcher'),
    registryAddress: r.string('REGISTRY_ADDRESS', '127.0.0.1:50051'),
    registryClient: readGrpcClientSecurity(r, 'REGISTRY'),
    targetAllowList,
    attemptTimeoutMs: r.int('ATTEMPT_TIMEOUT_MS', 10_000, { min: 100, max: 60_000 }),
    retrySchedule,
    retryJitter: r.int('RETRY_JITTER_PERCENT', 20, { min: 0, max: 50 }) / 100,
    maxInFlight: r.int('MAX_IN_FLIGHT', 256, { min: 1, max: 10_000 }),
    maxInFlightPerEndpoint: r.int('MAX_IN_FLIGHT_PER_ENDPOINT', 16, { min: 1, max: 1_000 }),
    schedulerIntervalMs: r.int('SCHEDULER_INTERVAL_MS', 1_000, { min: 50, max: 60_000 }),
    leaseMs: r.int('LEASE_MS', 60_000, { min: 1_000, max: 3_600_000 }),
    subscriberCacheMs: r.int('SUBSCRIBER_CACHE_MS', 30_000, { min: 0, max: 3_600_000 }),
    responseBodyLimit: r.int('RESPONSE_BODY_LIMIT_BYTES', 16 * 1024, { min: 0, max: 1024 * 1024 }),
    retentionMs: r.int('RETENTION_DAYS', 30, { min: 1, max: 365 }) * 24 * 3600 * 1000,
    autoDisableAfterMs: r.int('AUTO_DISABLE_AFTER_HOURS', 5 * 24, { min: 1, max: 90 * 24 }) * 3600 * 1000,
    maxQueuedPerEndpoint: 0,
    operationsTopic: r.string('KAFKA_TOPIC_OPERATIONS', 'webhooks.operations.v1'),
    spillAfterMs: r.int('SPILL_AFTER_MS', 2_000, { min: 100, max: 60_000 }),
    sessionTimeoutMs: r.int('KAFKA_SESSION_TIMEOUT_MS', 30_000, { min: 6_000, max: 300_000 }),
    shutdownDeadlineMs: r.int('SHUTDOWN_DEADLINE_MS', 20_000, { min: 1_000, max: 24_000 }),
  };
  config.maxQueuedPerEndpoint = r.int('MAX_QUEUED_PER_ENDPOINT', Math.max(4 * config.maxInFlightPerEndpoint, 64), { min: 1, max: 100_000 });
  r.done();
  return config;
}

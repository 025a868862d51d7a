// The only reader of process.env in the dispatcher. See the README's configuration table.
import { EnvReader, readGrpcClientSecurity, readServiceSettings, type GrpcClientSecurity, type ServiceSettings } from '@hookline/service-kit';
import { readTelemetrySettings } from '@hookline/telemetry';
import { readKafkaSettings, type KafkaSettings } from '@hookline/kafka';
import { AllowList } from '@hookline/url-policy';
import { parseSchedule } from './delivery/retry-policy';
import type { RetryTierSettings } from './retry/retry-tiers';

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
  /** Retry tier topics (one per distinct delay of the schedule) and the group consuming them. */
  retryTiers: RetryTierSettings & { consumerGroup: string };
  /** How long resolved subscribers are trusted without a change notice. Default 30 s. */
  subscriberCacheMs: number;
  /** Response bodies kept in attempt records, in bytes. Default 16 KiB. */
  responseBodyLimit: number;
  /** How long attempts, events and outcomes are kept. Default 30 days (RETENTION_SECONDS, for tests, wins). */
  retentionMs: number;
  /** How often expired buckets (store/buckets.ts) are looked for and dropped. Default 60 s. */
  retentionSweepIntervalMs: number;

  /** Endpoints failing without a success for this long are disabled. Default 5 days. */
  autoDisableAfterMs: number;
  /** Deliveries waiting in memory per endpoint; beyond this they wait in the shortest retry tier. Default max(4 × MAX_IN_FLIGHT_PER_ENDPOINT, 64). */
  maxQueuedPerEndpoint: number;
  /** Topic for operational events (endpoint disabled: 410 or auto-disable), JSON records. Default webhooks.operations.v1. */
  operationsTopic: string;
  /** A delivery still waiting in memory (not started) this long after intake goes to the shortest retry tier, so its record's offset can be committed. Default 2 s. */
  spillAfterMs: number;
  /** Attempts in a row that fail before an endpoint gets one probe attempt per BREAKER_PROBE_MS (0: never). Default 20. */
  breakerFailures: number;
  /** Probe interval of an endpoint whose circuit is open. Default 1 s. */
  breakerProbeMs: number;
  /** Retries of open-circuit endpoints parked in memory per replica (0: never park). Default 20,000 (~30 MB at 1 KiB payloads). */
  maxParked: number;
  /** Payload bytes parked in memory per replica at most, beside maxParked. Default 128 MiB. */
  maxParkedBytes: number;
  /** Payload bytes of deliveries held in memory (queued, in flight, being recorded) above which intake waits. Default 256 MiB. */
  maxHeldBytes: number;
  /** Longest a retry stays parked (its tier record uncommitted) before it goes back to a tier. Default 60 s. */
  parkMaxMs: number;
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
    retryTiers: {
      prefix: r.string('KAFKA_TOPIC_RETRY_PREFIX', 'webhooks.retry'),
      partitions: r.int('KAFKA_RETRY_PARTITIONS', 12, { min: 1, max: 1000 }),
      retentionMarginMs: r.int('KAFKA_RETRY_RETENTION_MARGIN_HOURS', 7 * 24, { min: 1, max: 90 * 24 }) * 3_600_000,
      consumerGroup: '',
    },
    subscriberCacheMs: r.int('SUBSCRIBER_CACHE_MS', 30_000, { min: 0, max: 3_600_000 }),
    responseBodyLimit: r.int('RESPONSE_BODY_LIMIT_BYTES', 16 * 1024, { min: 0, max: 1024 * 1024 }),
    retentionMs: r.int('RETENTION_DAYS', 30, { min: 1, max: 365 }) * 24 * 3600 * 1000,
    retentionSweepIntervalMs: r.int('RETENTION_SWEEP_INTERVAL_SECONDS', 60, { min: 1, max: 86_400 }) * 1000,
    autoDisableAfterMs: r.int('AUTO_DISABLE_AFTER_HOURS', 5 * 24, { min: 1, max: 90 * 24 }) * 3600 * 1000,
    maxQueuedPerEndpoint: 0,
    operationsTopic: r.string('KAFKA_TOPIC_OPERATIONS', 'webhooks.operations.v1'),
    spillAfterMs: r.int('SPILL_AFTER_MS', 2_000, { min: 100, max: 60_000 }),
    breakerFailures: r.int('BREAKER_FAILURES', 20, { min: 0, max: 100_000 }),
    breakerProbeMs: r.int('BREAKER_PROBE_MS', 1_000, { min: 100, max: 600_000 }),
    maxParked: r.int('MAX_PARKED', 20_000, { min: 0, max: 1_000_000 }),
    maxParkedBytes: r.int('MAX_PARKED_MB', 128, { min: 1, max: 65_536 }) * 1024 * 1024,
    maxHeldBytes: r.int('MAX_HELD_MB', 256, { min: 1, max: 65_536 }) * 1024 * 1024,
    parkMaxMs: r.int('PARK_MAX_SECONDS', 60, { min: 1, max: 3_600 }) * 1000,
    sessionTimeoutMs: r.int('KAFKA_SESSION_TIMEOUT_MS', 30_000, { min: 6_000, max: 300_000 }),
    shutdownDeadlineMs: r.int('SHUTDOWN_DEADLINE_MS', 20_000, { min: 1_000, max: 24_000 }),
  };
  const retentionSeconds = r.optional('RETENTION_SECONDS') === undefined ? undefined : r.int('RETENTION_SECONDS', 0, { min: 10, max: 365 * 86_400 });
  if (retentionSeconds) config.retentionMs = retentionSeconds * 1000;
  config.retryTiers.consumerGroup = r.string('KAFKA_RETRY_CONSUMER_GROUP', `${config.consumerGroup}.retries`);
  config.maxQueuedPerEndpoint = r.int('MAX_QUEUED_PER_ENDPOINT', Math.max(4 * config.maxInFlightPerEndpoint, 64), { min: 1, max: 100_000 });
  r.done();
  return config;
}

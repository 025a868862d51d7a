// Composition root of the dispatcher.
import { hostname } from 'node:os';
import { deliveryV1, endpointsV1 } from '@hookline/proto';
import { metrics } from '@opentelemetry/api';
import { createLogger, exitOnFatal, grpcClientArgs, GrpcServer, Lifecycle, Readiness, timeOrderedId, connectMongo, serve, type Logger } from '@hookline/service-kit';
import { allTopics, createKafka, createProducer, ensureTopicsOn, isRebalanceError, watchConsumer } from '@hookline/kafka';
import { currentTelemetry } from '@hookline/telemetry';
import { AllowList } from '@hookline/url-policy';
import type { DispatcherConfig } from './config';
import { DeliveryEngine } from './delivery/engine';

/** How often settled offsets are committed. */
const COMMIT_INTERVAL_MS = 200;
import { HttpAttempter, type Resolver } from './delivery/http-attempt';
import { DeliveryPipeline } from './delivery/pipeline';
import { ScheduleRetryPolicy } from './delivery/retry-policy';
import { deliveryService } from './grpc/delivery-service';
import { deliveryMetrics } from './metrics';
import { KafkaOperationalEvents } from './operations/operational-events';
import { RegistryControl } from './registry-client';
import { dispatcherModels } from './store/models';
import { OutcomeWriter } from './store/outcome-writer';
import { RegistrySubscribers, SubscriberCache } from './subscribers/subscriber-cache';

export interface DispatcherApp {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly port: number;
  /** Bound Prometheus port when METRICS_PORT is set (and telemetry is on). */
  readonly metricsPort: number | undefined;
  readonly log: Logger;
  readonly readiness: Readiness;
  /** The engine, once started (tests read its load). */
  readonly engine: DeliveryEngine | undefined;
}

export interface DispatcherOverrides {
  /** Stub DNS for tests. */
  resolver?: Resolver;
  /** Extra CA certificates (PEM) for endpoint TLS, for in-process tests (processes use NODE_EXTRA_CA_CERTS). */
  ca?: string[];
  /**
   * Called when the events consumer is down for good (kafkajs will not restart it). Default: stop
   * the process with exit code 1 (SIGTERM to itself: graceful stop first), so it is restarted.
   */
  onFatal?: (error: Error) => void;
}

export function createApp(config: DispatcherConfig, log: Logger = createLogger('dispatcher', config.logLevel), overrides: DispatcherOverrides = {}): DispatcherApp {
  const life = new Lifecycle(log);
  const readiness = new Readiness(log);
  let metricsPort: number | undefined;
  const owner = `${hostname()}-${process.pid}-${timeOrderedId('d').slice(-8)}`;
  let port = 0;
  let engine: DeliveryEngine | undefined;
  let stopDeadline = Infinity;
  return {
    log,
    readiness,
    get port() {
      return port;
    },
    get metricsPort() {
      return metricsPort;
    },
    async start() {
      // Registered first, so it runs last: the spans of the stop itself are exported too.
      life.defer('telemetry flush', () => currentTelemetry()?.flush());
      const db = await connectMongo(config.mongoUri, config.mongoDatabase, { life, readiness, log });
      const models = dispatcherModels(db);
      const meters = deliveryMetrics(metrics.getMeter('hookline'), () =>
        models.deliveries.countDocuments({ state: 'pending', attemptCount: { $gt: 0 }, nextAttemptAt: { $lte: new Date() } }).maxTimeMS(2_000).exec(),
      );
      await Promise.all(Object.values(models).map((m) => m.createIndexes()));

      log.info({ registry: config.registryAddress }, 'connecting to endpoint-registry');
      const registry = new endpointsV1.EndpointRegistryServiceClient(config.registryAddress, ...grpcClientArgs(config.registryClient));
      life.defer('registry client', () => registry.close());
      const subscribers = new SubscriberCache(new RegistrySubscribers(registry), config.subscriberCacheMs);
      const control = new RegistryControl(registry);

      const http = new HttpAttempter({
        allow: new AllowList(config.targetAllowList),
        timeoutMs: config.attemptTimeoutMs,
        bodyLimit: config.responseBodyLimit,
        // Bounded by the work queue (per endpoint and overall), not per origin: endpoints of
        // different customers often share a host (one SaaS, many paths), and a per-origin pool
        // the size of one endpoint's limit would let one hanging endpoint stall the others.
        connectionsPerOrigin: config.maxInFlight,
        ...(overrides.resolver ? { resolver: overrides.resolver } : {}),
        ...(overrides.ca ? { ca: overrides.ca } : {}),
      });
      life.defer('http agent', () => http.close());

      log.info({ brokers: config.kafka.brokers, group: config.consumerGroup }, 'connecting to Kafka');
      const kafka = createKafka(config.kafka, log);
      await ensureTopicsOn(kafka, [...allTopics(config.kafka), { name: config.operationsTopic, partitions: 3, configs: { 'retention.ms': String(30 * 24 * 3600 * 1000) } }], config.kafka.replicationFactor);
      const producer = createProducer(kafka);
      await producer.connect();
      life.defer('operations producer', () => producer.disconnect());
      const ops = new KafkaOperationalEvents(producer, config.operationsTopic, owner, log);

      const writer = new OutcomeWriter(models);
      const pipeline = new DeliveryPipeline({
        models,
        writer,
        http,
        subscribers,
        control,
        ops,
        policy: new ScheduleRetryPolicy(config.retrySchedule, config.retryJitter),
        owner,
        retentionMs: config.retentionMs,
        autoDisableAfterMs: config.autoDisableAfterMs,
        log,
        metrics: meters,
      });
      const eng = new DeliveryEngine(models, subscribers, pipeline, { ...config, owner, redeliveryGraceMs: config.spillAfterMs + config.attemptTimeoutMs + 1_000, serialize: (write) => writer.exclusive(write), onDependencyError: (err) => readiness.dependencyFailed(err) }, log);
      engine = eng;

      // Endpoint changes: drop cached subscribers of the workspace. A private group per replica
      // (every replica must see every change), starting from the latest record.
      const changes = kafka.consumer({ groupId: `${config.consumerGroup}-changes-${owner}`, sessionTimeout: 30_000, maxWaitTimeInMs: 1_000 });
      life.defer('changes consumer', () => changes.disconnect());
      await changes.connect();
      await changes.subscribe({ topic: config.kafka.topics.endpointChanges.name, fromBeginning: false });
      await changes.run({
        eachMessage: async ({ message }) => {
          if (!message.value) return;
          try {
            subscribers.invalidateWorkspace(endpointsV1.EndpointChangedEvent.decode(message.value).workspaceId);
          } catch (err) {
            log.warn({ err }, 'undecodable endpoint change skipped');
          }
        },
      });

      // maxWaitTimeInMs 1 s (kafkajs default 5 s): a stop waits for the fetch in progress, and the
      // shutdown deadline is better spent on in-flight attempts.
      const consumer = kafka.consumer({ groupId: config.consumerGroup, sessionTimeout: config.sessionTimeoutMs, heartbeatInterval: Math.min(3_000, Math.floor(config.sessionTimeoutMs / 3)), maxBytesPerPartition: 1024 * 1024, maxWaitTimeInMs: 1_000 });
      watchConsumer(consumer, readiness, 'kafka events consumer', overrides.onFatal ?? exitOnFatal(log));
      await consumer.connect();
      await consumer.subscribe({ topic: config.kafka.topics.events.name, fromBeginning: true });
      // Offsets are committed from the engine's tracker (records whose deliveries are all
      // settled), not from the batch: a batch is done once its deliveries are queued.
      let committing: Promise<void> | undefined;
      const commitSettled = (): Promise<void> =>
        (committing ??= (async () => {
          const due = eng.offsets.due();
          if (due.length === 0) return;
          try {
            await consumer.commitOffsets(due);
            for (const p of due) eng.offsets.committed(p);
          } catch (err) {
            // A rebalance in progress refuses commits; the next round (or the partition's new owner) commits.
            if (isRebalanceError(err)) log.info({ err }, 'offset commit refused during a rebalance; retrying');
            else log.warn({ err }, 'offset commit failed; retrying');
          }
        })().finally(() => (committing = undefined)));
      const committer = setInterval(() => void commitSettled(), COMMIT_INTERVAL_MS);
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => eng.offsets.retain(payload.memberAssignment));
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
          const CHUNK = 500;
          for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += CHUNK) {
            // Backpressure without missing heartbeats (a blocked batch would cost the partitions).
            while (!(await eng.waitForRoom(1_000))) {
              if (!isRunning() || isStale() || eng.stopping) return;
              await heartbeat();
            }
            if (eng.stopping) return;
            const chunk = batch.messages.slice(i, i + CHUNK);
            await eng.intake(batch.topic, batch.partition, chunk, heartbeat);
            const last = chunk[chunk.length - 1]!.offset;
            resolveOffset(last);
            meters.consumerLag(batch.topic, batch.partition, Math.max(Number(BigInt(batch.highWatermark) - BigInt(last) - 1n), 0));
            await heartbeat();
          }
        },
      });
      // One step, in this order: no more fetches; the engine settles what it holds (finishing or
      // handing back); the final offsets are committed while the consumer is still a member (kafkajs
      // drops commits once it stops); then the consumer leaves the group.
      life.defer('events consumer and delivery engine', async () => {
        consumer.pause([{ topic: config.kafka.topics.events.name }]);
        await eng.stop(Math.max(stopDeadline - Date.now() - 2_000, 500));
        clearInterval(committer);
        await committing;
        await commitSettled();
        await consumer.disconnect();
      });
      eng.startScheduler();

      const server = new GrpcServer(log);
      server.add(deliveryV1.DeliveryServiceService, 'webhooks.delivery.v1.DeliveryService', deliveryService({ models, http, subscribers, examples: control, retentionMs: config.retentionMs, kick: () => void eng.scan() }));
      ({ port, metricsPort } = await serve(server, { name: 'dispatcher', host: config.grpcHost, port: config.grpcPort, metricsHost: config.metricsHost, metricsPort: config.metricsPort, security: config.grpcSecurity }, { life, readiness, log }));
    },
    stop: () => {
      readiness.drain();
      stopDeadline = Date.now() + config.shutdownDeadlineMs;
      return life.stop(config.shutdownDeadlineMs);
    },
    get engine() {
      return engine;
    },
  };
}

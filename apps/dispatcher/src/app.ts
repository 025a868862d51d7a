// Composition root of the dispatcher.
import { hostname } from 'node:os';
import { deliveryV1, endpointsV1 } from '@hookline/proto';
import { metrics } from '@opentelemetry/api';
import { createLogger, exitOnFatal, grpcClientArgs, GrpcServer, Lifecycle, Readiness, timeOrderedId, connectMongo, serve, type Logger } from '@hookline/service-kit';
import { allTopics, createKafka, createProducer, ensureTopicsOn, isRebalanceError, watchConsumer, type ConsumerWatchHandle } from '@hookline/kafka';
import type { Admin, Consumer, ConsumerRunConfig } from 'kafkajs';
import { currentTelemetry } from '@hookline/telemetry';
import { AllowList } from '@hookline/url-policy';
import type { DispatcherConfig } from './config';
import { DeliveryEngine } from './delivery/engine';
import { HttpAttempter, type Resolver } from './delivery/http-attempt';
import { DeliveryPipeline } from './delivery/pipeline';
import { ScheduleRetryPolicy } from './delivery/retry-policy';
import { deliveryService } from './grpc/delivery-service';
import { deliveryMetrics } from './metrics';
import { KafkaOperationalEvents } from './operations/operational-events';
import { RegistryControl } from './registry-client';
import { dispatcherModels } from './store/models';
import { OutcomeWriter } from './store/outcome-writer';
import { Retention } from './store/retention';
import { RegistrySubscribers, SubscriberCache } from './subscribers/subscriber-cache';
import { RetryTiers } from './retry/retry-tiers';
import { TierSink } from './retry/tasks';
import type { OffsetTracker } from './delivery/offset-tracker';

/** How often settled offsets are committed. */
const COMMIT_INTERVAL_MS = 200;
/** Records per intake call: large enough to group writes, small enough to heartbeat between. */
const CHUNK = 500;

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
  /** Expiry of dispatcher documents, once started (tests sweep on demand). */
  readonly retention: Retention | undefined;
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
  // Names this replica in logs, operational records and its private changes group.
  const owner = `${hostname()}-${process.pid}-${timeOrderedId('d').slice(-8)}`;
  let port = 0;
  let engine: DeliveryEngine | undefined;
  let retentionRef: Retention | undefined;
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
      const models = dispatcherModels(db, config.retentionMs);
      const meters = deliveryMetrics(metrics.getMeter('hookline'));
      await models.health.createIndexes();
      const retention = new Retention([models.events, models.attempts, models.delivered, models.failed] as never, { intervalMs: config.retentionSweepIntervalMs }, log);
      retention.start();
      life.defer('retention', () => retention.stop());
      retentionRef = retention;

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
      // Records met again wait out this grace before they are verified and attempted (long enough
      // for the replica that had them to finish and record the attempt); it gets a tier of its own
      // so those records never wait behind a longer tier's heads.
      const redeliveryGraceMs = config.spillAfterMs + config.attemptTimeoutMs + 1_000;
      const tiers = new RetryTiers([...config.retrySchedule, redeliveryGraceMs], config.retryTiers, config.retryJitter);
      await ensureTopicsOn(
        kafka,
        [...allTopics(config.kafka), ...tiers.topicSpecs(), { name: config.operationsTopic, partitions: 3, configs: { 'retention.ms': String(30 * 24 * 3600 * 1000) } }],
        config.kafka.replicationFactor,
      );
      // One producer for retries and operational records (idempotent, acks = all).
      const producer = createProducer(kafka);
      await producer.connect();
      life.defer('producer', () => producer.disconnect());
      const ops = new KafkaOperationalEvents(producer, config.operationsTopic, owner, log);
      const waiting = new TierSink(producer, tiers);

      const pipeline = new DeliveryPipeline({
        models,
        writer: new OutcomeWriter(models),
        waiting,
        http,
        subscribers,
        control,
        ops,
        policy: new ScheduleRetryPolicy(config.retrySchedule, config.retryJitter),
        retentionMs: config.retentionMs,
        autoDisableAfterMs: config.autoDisableAfterMs,
        log,
        metrics: meters,
      });
      const eng = new DeliveryEngine(models, subscribers, pipeline, waiting, tiers, { ...config, redeliveryGraceMs, onDependencyError: (err) => readiness.dependencyFailed(err) }, log);
      engine = eng;
      meters.watchEngine(() => {
        const { parked, heldBytes, earlyRetries } = eng.load;
        return { parked, openCircuits: eng.breakers.open, heldBytes, earlyRetries };
      });

      // Endpoint changes: drop cached subscribers of the workspace. A private group per replica
      // (every replica must see every change), starting from the latest record.
      const changes = kafka.consumer({ groupId: `${config.consumerGroup}-changes-${owner}`, sessionTimeout: 30_000, maxWaitTimeInMs: 1_000 });
      const changesRun: ConsumerRunConfig = {
        eachMessage: async ({ message }) => {
          if (!message.value) return;
          try {
            subscribers.invalidateWorkspace(endpointsV1.EndpointChangedEvent.decode(message.value).workspaceId);
          } catch (err) {
            log.warn({ err }, 'undecodable endpoint change skipped');
          }
        },
      };
      const onFatal = overrides.onFatal ?? exitOnFatal(log);
      const changesWatch = watchConsumer(changes, readiness, 'kafka changes consumer', { onFatal, rerun: () => changes.run(changesRun), log });
      life.defer('changes consumer', async () => {
        await changesWatch.close();
        await changes.disconnect();
      });
      await changes.connect();
      await changes.subscribe({ topic: config.kafka.topics.endpointChanges.name, fromBeginning: false });
      await changes.run(changesRun);

      // Two consumer groups, both committing from the engine's trackers (records whose tasks are
      // all settled), never from the batch: a batch is done once its tasks are queued.
      // maxWaitTimeInMs 1 s (kafkajs default 5 s): a stop waits for the fetch in progress, and the
      // shutdown deadline is better spent on in-flight attempts.
      // Retries outlast a broker restart (~80 s in all, 10 s apart at most). A consumer that
      // rejoins before its coordinator is back still ends with "Failed to find group coordinator",
      // which kafkajs does not restart from: watchConsumer runs it again in-process (an exit would
      // cost a rebalance of both groups and the parked retries).
      const consumerOptions = {
        sessionTimeout: config.sessionTimeoutMs,
        heartbeatInterval: Math.min(3_000, Math.floor(config.sessionTimeoutMs / 3)),
        maxBytesPerPartition: 1024 * 1024,
        maxWaitTimeInMs: 1_000,
        retry: { initialRetryTime: 300, retries: 12, maxRetryTime: 10_000 },
      };
      // Intake of a new partition waits this long at most for its previous owner's commit (it
      // heartbeats meanwhile).
      const inheritTimeoutMs = Math.min(INHERIT_TIMEOUT_MS, Math.floor(config.sessionTimeoutMs / 3));
      const admin = kafka.admin();
      life.defer('kafka admin client', () => admin.disconnect());
      await admin.connect();
      const events = kafka.consumer({ groupId: config.consumerGroup, ...consumerOptions });
      const retries = kafka.consumer({ groupId: config.retryTiers.consumerGroup, ...consumerOptions });
      const committers = [committer(events, eng.eventOffsets, log), committer(retries, eng.taskOffsets, log)];
      const timer = setInterval(() => committers.forEach((c) => void c()), COMMIT_INTERVAL_MS);
      const resumes = new Set<NodeJS.Timeout>();
      const runs = new Map<Consumer, ConsumerRunConfig>();
      const watches: ConsumerWatchHandle[] = [];
      for (const [consumer, offsets, name] of [
        [events, eng.eventOffsets, 'kafka events consumer'],
        [retries, eng.taskOffsets, 'kafka retry consumer'],
      ] as const) {
        watches.push(watchConsumer(consumer, readiness, name, { onFatal, rerun: () => consumer.run(runs.get(consumer)), log }));
        // Partitions new here: what their previous owner settled past its commit point is read
        // from the commit's metadata before their records are taken (offset-tracker.ts).
        consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
          const added = offsets.retain(payload.memberAssignment);
          if (added.length > 0) offsets.inherit(added, committedOffsets(admin, payload.groupId, added, inheritTimeoutMs, log));
        });
        // A consumer kafkajs does not restart is out of its group for seconds at least (the watch
        // runs it again, as a new member): its partitions go to other replicas meanwhile. A
        // partition given back after that must not keep its old assignment time, parked tasks and
        // commit point (the other owner's may be ahead): forget them all now; records read again
        // are deduplicated against the attempts still held (engine.coveredBy). A crash kafkajs
        // restarts keeps them: kafkajs leaves the group and joins again at once, usually getting
        // the same partitions back (if another member had them meanwhile, records both took are
        // sent twice, and the next GROUP_JOIN commits this replica's point again).
        consumer.on(consumer.events.CRASH, ({ payload }) => {
          if (payload.restart) return;
          offsets.retain({});
          if (consumer === events) retention.setActive(false);
          if (consumer === retries) eng.retainParked({});
        });
        if (consumer === events) consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => retention.setActive((payload.memberAssignment[config.kafka.topics.events.name] ?? []).includes(0)));
        if (consumer === retries) consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => eng.retainParked(payload.memberAssignment));
        await consumer.connect();
      }
      await events.subscribe({ topic: config.kafka.topics.events.name, fromBeginning: true });
      await retries.subscribe({ topics: tiers.topics, fromBeginning: true });
      runs.set(events, {
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
          for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += CHUNK) {
            if (!(await roomFor(eng, heartbeat, () => isRunning() && !isStale()))) return;
            const chunk = batch.messages.slice(i, i + CHUNK);
            await eng.intakeEvents(batch.topic, batch.partition, chunk, heartbeat);
            const last = chunk[chunk.length - 1]!.offset;
            resolveOffset(last);
            meters.consumerLag(batch.topic, batch.partition, Math.max(Number(BigInt(batch.highWatermark) - BigInt(last) - 1n), 0));
            await heartbeat();
          }
        },
      });
      runs.set(retries, {
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset, pause }) => {
          for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += CHUNK) {
            if (!(await roomFor(eng, heartbeat, () => isRunning() && !isStale(), true))) return;
            const chunk = batch.messages.slice(i, i + CHUNK);
            const { taken, resumeAt } = await eng.intakeTasks(batch.topic, batch.partition, chunk, heartbeat);
            if (taken > 0) resolveOffset(chunk[taken - 1]!.offset);
            meters.consumerLag(batch.topic, batch.partition, Math.max(Number(BigInt(batch.highWatermark) - BigInt(chunk[Math.max(taken - 1, 0)]!.offset)), 0));
            if (resumeAt !== undefined) {
              // The head is not due: fetch nothing more from this partition until it is. The next
              // fetch starts at the first record not resolved, the head itself.
              const resume = pause();
              const t = setTimeout(() => {
                resumes.delete(t);
                resume();
              }, Math.max(resumeAt - Date.now(), 0));
              resumes.add(t);
              return;
            }
            await heartbeat();
          }
        },
      });
      for (const c of [events, retries]) await c.run(runs.get(c));
      // One step, in this order: no more fetches; the engine settles what it holds (finishing or
      // handing to the tiers); the final offsets are committed while the consumers are still
      // members (kafkajs drops commits once it stops); then they leave their groups.
      life.defer('consumers and delivery engine', async () => {
        await Promise.all(watches.map((w) => w.close()));
        // A consumer that crashed is not running, and kafkajs refuses to pause it: the engine must stop all the same.
        for (const [c, topics] of [[events, [config.kafka.topics.events.name]], [retries, tiers.topics]] as const) {
          try {
            c.pause(topics.map((topic) => ({ topic })));
          } catch (err) {
            log.info({ err }, 'consumer not running; nothing to pause');
          }
        }
        for (const t of resumes) clearTimeout(t);
        await eng.stop(Math.max(stopDeadline - Date.now() - 2_000, 500), config.attemptTimeoutMs);
        clearInterval(timer);
        for (const c of committers) await c();
        await Promise.all([events.disconnect(), retries.disconnect()]);
      });

      const server = new GrpcServer(log);
      server.add(deliveryV1.DeliveryServiceService, 'webhooks.delivery.v1.DeliveryService', deliveryService({ models, http, subscribers, examples: control, waiting, retentionMs: config.retentionMs }));
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
    get retention() {
      return retentionRef;
    },
  };
}

/**
 * Commits what `offsets` says is settled, one commit in flight at a time. A rebalance in progress
 * refuses commits; the next round (or the partition's new owner) commits.
 */
function committer(consumer: Consumer, offsets: OffsetTracker, log: Logger): () => Promise<void> {
  let committing: Promise<void> | undefined;
  return () =>
    (committing ??= (async () => {
      const due = offsets.due();
      if (due.length === 0) return;
      try {
        await consumer.commitOffsets(due);
        for (const p of due) offsets.committed(p);
      } catch (err) {
        if (isRebalanceError(err)) log.info({ err }, 'offset commit refused during a rebalance; retrying');
        else if ((err as { type?: unknown }).type === 'OFFSET_METADATA_TOO_LARGE') {
          offsets.shrinkMetadata();
          log.warn({ err }, 'the broker refused the offset commit metadata as too large (offset.metadata.max.bytes); writing half as much from now on');
        } else log.warn({ err }, 'offset commit failed; retrying');
      }
    })().finally(() => (committing = undefined)));
}

/** Longest intake of a newly assigned partition waits for its previous owner's commit (a third of the session timeout if less). */
const INHERIT_TIMEOUT_MS = 5_000;

/**
 * The committed offsets and metadata of these partitions, by `topic/partition`. Rejects after
 * `timeoutMs`, or when the broker does not answer: their records are then all taken, as
 * without metadata.
 */
async function committedOffsets(admin: Admin, groupId: string, partitions: { topic: string; partition: number }[], timeoutMs: number, log: Logger): Promise<Map<string, { offset: string; metadata: string | null }>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const topics = [...new Set(partitions.map((p) => p.topic))];
    const found = await Promise.race([
      admin.fetchOffsets({ groupId, topics }),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))),
    ]);
    const out = new Map<string, { offset: string; metadata: string | null }>();
    for (const t of found) for (const p of t.partitions) out.set(`${t.topic}/${p.partition}`, { offset: p.offset, metadata: p.metadata });
    return out;
  } catch (err) {
    log.warn({ err, groupId, partitions: partitions.length }, 'could not read the committed offsets of partitions new here; their records past the commit point are all taken');
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Backpressure without missing heartbeats (a blocked batch would cost the partitions). False: give the batch up. */
async function roomFor(eng: DeliveryEngine, heartbeat: () => Promise<void>, current: () => boolean, forTiers = false): Promise<boolean> {
  while (!(await eng.waitForRoom(1_000, forTiers))) {
    if (!current() || eng.stopping) return false;
    await heartbeat();
  }
  return !eng.stopping;
}

// Composition root of the dispatcher.
import { hostname } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import mongoose from 'mongoose';
import { deliveryV1, endpointsV1 } from '@hookline/proto';
import { createLogger, GrpcServer, Lifecycle, timeOrderedId, type Logger } from '@hookline/service-kit';
import { allTopics, createKafka, ensureTopics } from '@hookline/kafka';
import { AllowList } from '@hookline/url-policy';
import type { DispatcherConfig } from './config';
import { DeliveryEngine } from './delivery/engine';
import { HttpAttempter, type Resolver } from './delivery/http-attempt';
import { DeliveryPipeline } from './delivery/pipeline';
import { ScheduleRetryPolicy } from './delivery/retry-policy';
import { deliveryService } from './grpc/delivery-service';
import { RegistryControl } from './registry-client';
import { dispatcherModels } from './store/models';
import { RegistrySubscribers, SubscriberCache } from './subscribers/subscriber-cache';

export interface DispatcherApp {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly port: number;
  readonly log: Logger;
}

export interface DispatcherOverrides {
  /** Stub DNS for tests. */
  resolver?: Resolver;
}

export function createApp(config: DispatcherConfig, log: Logger = createLogger('dispatcher', config.logLevel), overrides: DispatcherOverrides = {}): DispatcherApp {
  const life = new Lifecycle(log);
  const owner = `${hostname()}-${process.pid}-${timeOrderedId('d').slice(-8)}`;
  let port = 0;
  return {
    log,
    get port() {
      return port;
    },
    async start() {
      log.info({ db: config.mongoDatabase, owner }, 'connecting to MongoDB');
      const db = mongoose.createConnection(config.mongoUri, { dbName: config.mongoDatabase, serverSelectionTimeoutMS: 5_000 });
      life.defer('mongodb', () => db.close());
      await db.asPromise();
      const models = dispatcherModels(db);
      await Promise.all(Object.values(models).map((m) => m.createIndexes()));

      log.info({ registry: config.registryAddress }, 'connecting to endpoint-registry');
      const registry = new endpointsV1.EndpointRegistryServiceClient(config.registryAddress, grpc.credentials.createInsecure());
      life.defer('registry client', () => registry.close());
      const subscribers = new SubscriberCache(new RegistrySubscribers(registry), config.subscriberCacheMs);
      const control = new RegistryControl(registry);

      const http = new HttpAttempter({
        allow: new AllowList(config.targetAllowList),
        timeoutMs: config.attemptTimeoutMs,
        bodyLimit: config.responseBodyLimit,
        connectionsPerOrigin: config.maxInFlightPerEndpoint,
        ...(overrides.resolver ? { resolver: overrides.resolver } : {}),
      });
      life.defer('http agent', () => http.close());
      const pipeline = new DeliveryPipeline({
        models,
        http,
        subscribers,
        control,
        policy: new ScheduleRetryPolicy(config.retrySchedule, config.retryJitter),
        owner,
        retentionMs: config.retentionMs,
        autoDisableAfterMs: config.autoDisableAfterMs,
        log,
      });
      const engine = new DeliveryEngine(models, subscribers, pipeline, { ...config, owner }, log);

      log.info({ brokers: config.kafka.brokers, group: config.consumerGroup }, 'connecting to Kafka');
      const kafka = createKafka(config.kafka, log);
      const admin = kafka.admin();
      await admin.connect();
      try {
        await ensureTopics(admin, allTopics(config.kafka), config.kafka.replicationFactor);
      } finally {
        await admin.disconnect();
      }

      // Endpoint changes: drop cached subscribers of the workspace. A private group per replica
      // (every replica must see every change), starting from the latest record.
      const changes = kafka.consumer({ groupId: `${config.consumerGroup}-changes-${owner}`, sessionTimeout: 30_000 });
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

      const consumer = kafka.consumer({ groupId: config.consumerGroup, sessionTimeout: 30_000, heartbeatInterval: 3_000, maxBytesPerPartition: 1024 * 1024 });
      await consumer.connect();
      await consumer.subscribe({ topic: config.kafka.topics.events.name, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
          const CHUNK = 500;
          for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += CHUNK) {
            const chunk = batch.messages.slice(i, i + CHUNK);
            const release = await engine.intake(chunk);
            const next = (BigInt(chunk[chunk.length - 1]!.offset) + 1n).toString();
            await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
            release();
            await heartbeat();
          }
        },
      });
      // Stopped before the engine (registered after it), so no new intake races the hand-back.
      life.defer('delivery engine', () => engine.stop(8_000));
      life.defer('events consumer', () => consumer.disconnect());
      engine.startScheduler();

      const server = new GrpcServer(log);
      server.add(deliveryV1.DeliveryServiceService, 'webhooks.delivery.v1.DeliveryService', deliveryService({ models, http, subscribers, examples: control, retentionMs: config.retentionMs, kick: () => void engine.scan() }));
      port = await server.listen(config.grpcHost, config.grpcPort);
      life.defer('grpc server', () => server.shutdown(5_000));
      server.setHealth('SERVING');
      log.info({ host: config.grpcHost, port }, 'dispatcher serving gRPC');
    },
    stop: () => life.stop(),
  };
}

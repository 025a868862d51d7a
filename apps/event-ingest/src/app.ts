// Composition root of event-ingest.
import * as grpc from '@grpc/grpc-js';
import mongoose from 'mongoose';
import { endpointsV1, eventsV1 } from '@hookline/proto';
import { createLogger, GrpcServer, Lifecycle, type Logger } from '@hookline/service-kit';
import { allTopics, createKafka, createProducer, ensureTopics } from '@hookline/kafka';
import type { IngestConfig } from './config';
import { Catalog, RegistryEventTypes } from './catalog/catalog';
import { MongoIdempotencyStore } from './idempotency/idempotency-store';
import { KafkaEventSink } from './publish/event-publisher';
import { Ingestor } from './ingestor';
import { ingestService } from './grpc/ingest-service';
import { KafkaIngestConsumer } from './kafka-ingest/ingest-consumer';

export interface IngestApp {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly port: number;
  readonly log: Logger;
}

export function createApp(config: IngestConfig, log: Logger = createLogger('event-ingest', config.logLevel)): IngestApp {
  const life = new Lifecycle(log);
  let port = 0;
  return {
    log,
    get port() {
      return port;
    },
    async start() {
      log.info({ db: config.mongoDatabase }, 'connecting to MongoDB');
      const db = mongoose.createConnection(config.mongoUri, { dbName: config.mongoDatabase, serverSelectionTimeoutMS: 5_000 });
      life.defer('mongodb', () => db.close());
      await db.asPromise();
      const keys = new MongoIdempotencyStore(db, config.idempotencyWindowMs, log);
      await keys.init();
      keys.startSweeper();
      life.defer('idempotency sweeper', () => keys.stopSweeper());

      log.info({ brokers: config.kafka.brokers }, 'connecting to Kafka');
      const kafka = createKafka(config.kafka, log);
      const admin = kafka.admin();
      await admin.connect();
      try {
        await ensureTopics(admin, allTopics(config.kafka), config.kafka.replicationFactor);
      } finally {
        await admin.disconnect();
      }
      const producer = createProducer(kafka);
      life.defer('kafka producer', () => producer.disconnect());
      await producer.connect();

      log.info({ registry: config.registryAddress }, 'connecting to endpoint-registry');
      const registry = new endpointsV1.EndpointRegistryServiceClient(config.registryAddress, grpc.credentials.createInsecure());
      life.defer('registry client', () => registry.close());
      const catalog = new Catalog(new RegistryEventTypes(registry), config.catalogTtlMs);
      const ingestor = new Ingestor(catalog, keys, new KafkaEventSink(producer, config.kafka.topics.events.name, config.publishTimeoutMs), config.maxPayloadBytes, log);

      if (config.kafkaIngestEnabled) {
        // Registered after the producer, so it stops first: no record is mid-flight when the
        // producer goes away (an interrupted record is simply re-read: offsets were not committed).
        const ingest = new KafkaIngestConsumer(
          kafka,
          producer,
          ingestor,
          { topic: config.kafka.topics.ingest.name, dlqTopic: config.kafka.topics.ingestDlq.name, groupId: config.kafkaIngestGroup },
          log.child({ component: 'kafka-ingest' }),
        );
        life.defer('kafka ingest consumer', () => ingest.stop());
        await ingest.start();
      }

      const server = new GrpcServer(log);
      server.add(eventsV1.EventIngestServiceService, 'webhooks.events.v1.EventIngestService', ingestService(ingestor));
      port = await server.listen(config.grpcHost, config.grpcPort);
      life.defer('grpc server', () => server.shutdown(5_000));
      server.setHealth('SERVING');
      log.info({ host: config.grpcHost, port }, 'event-ingest serving gRPC');
    },
    stop: () => life.stop(),
  };
}

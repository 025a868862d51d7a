// Composition root of event-ingest.
import { endpointsV1, eventsV1 } from '@hookline/proto';
import { createLogger, exitOnFatal, grpcClientArgs, GrpcServer, Lifecycle, Readiness, connectMongo, serve, type Logger } from '@hookline/service-kit';
import { allTopics, brokerProbe, createKafka, createProducer, ensureTopicsOn, watchConsumer, type ConsumerWatchHandle } from '@hookline/kafka';
import { currentTelemetry } from '@hookline/telemetry';
import { metrics } from '@opentelemetry/api';
import type { IngestConfig } from './config';
import { Catalog, RegistryEventTypes } from './catalog/catalog';
import { MongoIdempotencyStore } from './idempotency/idempotency-store';
import { KafkaEventSink, type EventSink } from './publish/event-publisher';
import { ingestMetrics } from './metrics';
import { Ingestor } from './ingestor';
import { ingestService } from './grpc/ingest-service';
import { KafkaIngestConsumer } from './kafka-ingest/ingest-consumer';

export interface IngestApp {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly port: number;
  /** Bound Prometheus port when METRICS_PORT is set (and telemetry is on). */
  readonly metricsPort: number | undefined;
  readonly log: Logger;
  readonly readiness: Readiness;
}

export interface IngestOverrides {
  /** Called when the Kafka ingest consumer is down for good. Default: exit code 1 via SIGTERM. */
  onFatal?: (error: Error) => void;
}

export function createApp(config: IngestConfig, log: Logger = createLogger('event-ingest', config.logLevel), overrides: IngestOverrides = {}): IngestApp {
  const life = new Lifecycle(log);
  const readiness = new Readiness(log);
  let port = 0;
  let metricsPort: number | undefined;
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
      const counters = ingestMetrics(metrics.getMeter('hookline'));
      const db = await connectMongo(config.mongoUri, config.mongoDatabase, { life, readiness, log });
      const keys = new MongoIdempotencyStore(db, config.idempotencyWindowMs, log);
      await keys.init();
      keys.startSweeper();
      life.defer('idempotency sweeper', () => keys.stopSweeper());

      log.info({ brokers: config.kafka.brokers }, 'connecting to Kafka');
      const kafka = createKafka(config.kafka, log);
      await ensureTopicsOn(kafka, allTopics(config.kafka), config.kafka.replicationFactor);
      const producer = createProducer(kafka);
      life.defer('kafka producer', () => producer.disconnect());
      await producer.connect();

      log.info({ registry: config.registryAddress }, 'connecting to endpoint-registry');
      const registry = new endpointsV1.EndpointRegistryServiceClient(config.registryAddress, ...grpcClientArgs(config.registryClient));
      life.defer('registry client', () => registry.close());
      const catalog = new Catalog(new RegistryEventTypes(registry), config.catalogTtlMs);
      // A publish the broker did not acknowledge means the broker is lost: NOT_SERVING until a
      // metadata request answers again (probed every 5 s) or a later publish succeeds.
      const kafkaSink = new KafkaEventSink(producer, config.kafka.topics.events.name, config.publishTimeoutMs);
      const probe = brokerProbe(kafka);
      const sink: EventSink = {
        async publish(events) {
          try {
            await kafkaSink.publish(events);
          } catch (err) {
            readiness.markDown('kafka', 'the broker did not acknowledge a publish', probe);
            throw err;
          }
          readiness.markUp('kafka');
        },
      };
      const ingestor = new Ingestor(catalog, keys, sink, config.maxPayloadBytes, log, undefined, counters);

      if (config.kafkaIngestEnabled) {
        // Registered after the producer, so it stops first: no record is mid-flight when the
        // producer goes away (an interrupted record is simply re-read: offsets were not committed).
        const ingest = new KafkaIngestConsumer(
          kafka,
          producer,
          ingestor,
          { topic: config.kafka.topics.ingest.name, dlqTopic: config.kafka.topics.ingestDlq.name, groupId: config.kafkaIngestGroup },
          log.child({ component: 'kafka-ingest' }),
          counters,
        );
        let watch: ConsumerWatchHandle | undefined;
        life.defer('kafka ingest consumer', async () => {
          await watch?.close();
          await ingest.stop();
        });
        await ingest.start((consumer) => {
          watch = watchConsumer(consumer, readiness, 'kafka ingest consumer', { onFatal: overrides.onFatal ?? exitOnFatal(log), rerun: () => ingest.run(), log });
        });
      }

      const server = new GrpcServer(log);
      server.add(eventsV1.EventIngestServiceService, 'webhooks.events.v1.EventIngestService', ingestService(ingestor));
      ({ port, metricsPort } = await serve(server, { name: 'event-ingest', host: config.grpcHost, port: config.grpcPort, metricsHost: config.metricsHost, metricsPort: config.metricsPort, security: config.grpcSecurity }, { life, readiness, log }));
    },
    stop: () => {
      readiness.drain();
      return life.stop();
    },
  };
}

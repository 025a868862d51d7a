// Composition root: build dependencies in a fixed, logged order; undo them in reverse.
import { endpointsV1 } from '@hookline/proto';
import { createLogger, GrpcServer, Lifecycle, Readiness, connectMongo, serve, type Logger } from '@hookline/service-kit';
import { currentTelemetry } from '@hookline/telemetry';
import { allTopics, createKafka, createProducer, ensureTopicsOn } from '@hookline/kafka';
import { AllowList } from '@hookline/url-policy';
import type { RegistryConfig } from './config';
import { KafkaChangeNotifier } from './changes';
import { registryService } from './grpc/registry-service';
import { SecretBox } from './secrets/secret-box';
import { EndpointLocks } from './store/endpoint-locks';
import { registryModels } from './store/models';

export interface RegistryApp {
  /** Resolves once the gRPC port is bound and the service reports SERVING. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The bound gRPC port (after start). */
  readonly port: number;
  /** Bound Prometheus port when METRICS_PORT is set (and telemetry is on). */
  readonly metricsPort: number | undefined;
  readonly log: Logger;
  readonly readiness: Readiness;
}

export function createApp(config: RegistryConfig, log: Logger = createLogger('endpoint-registry', config.logLevel)): RegistryApp {
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
      const db = await connectMongo(config.mongoUri, config.mongoDatabase, { life, readiness, log });
      const models = registryModels(db);
      await models.endpoints.createIndexes();
      await models.eventTypes.createIndexes();
      await models.locks.createIndexes();

      log.info({ brokers: config.kafka.brokers }, 'connecting to Kafka');
      const kafka = createKafka(config.kafka, log);
      await ensureTopicsOn(kafka, allTopics(config.kafka), config.kafka.replicationFactor);
      const producer = createProducer(kafka);
      life.defer('kafka producer', () => producer.disconnect());
      await producer.connect();

      const server = new GrpcServer(log);
      server.add(endpointsV1.EndpointRegistryServiceService, 'webhooks.endpoints.v1.EndpointRegistryService', registryService({
        models,
        box: new SecretBox(config.secretKeys, config.activeSecretKeyId),
        allow: new AllowList(config.targetAllowList),
        changes: new KafkaChangeNotifier(producer, config.kafka.topics.endpointChanges.name, log),
        locks: new EndpointLocks(models.locks),
      }));
      ({ port, metricsPort } = await serve(server, { name: 'endpoint-registry', host: config.grpcHost, port: config.grpcPort, metricsHost: config.metricsHost, metricsPort: config.metricsPort, security: config.grpcSecurity }, { life, readiness, log }));
    },
    stop: () => {
      readiness.drain();
      return life.stop();
    },
  };
}

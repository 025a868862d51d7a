// In-process platform for the dispatcher's integration tests: endpoint-registry, event-ingest
// and the dispatcher as apps in this process, against the real Kafka broker and MongoDB wire
// server, with their own databases and topics under a random prefix. Endpoints are a real
// HTTPS TestReceiver (trusted through the `ca` override, the in-process NODE_EXTRA_CA_CERTS).
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import mongoose from 'mongoose';
import { deliveryV1, endpointsV1, eventsV1 } from '@hookline/proto';
import { createLogger, type Logger } from '@hookline/service-kit';
import { deleteTopics, dropDatabases, infraFromEnv, isolatedServiceEnv, makeTestPki, rpc, TestReceiver, type TestPki } from '@hookline/testing';
import { createApp as createRegistry } from '../../endpoint-registry/src/app';
import { loadConfig as loadRegistryConfig } from '../../endpoint-registry/src/config';
import { createApp as createIngest } from '../../event-ingest/src/app';
import { loadConfig as loadIngestConfig } from '../../event-ingest/src/config';
import { createApp as createDispatcher, type DispatcherApp } from '../src/app';
import { loadConfig as loadDispatcherConfig } from '../src/config';
import type { Resolver } from '../src/delivery/http-attempt';
import { dispatcherModels, type DispatcherModels } from '../src/store/models';

export const EVENT_TYPE = 'order.created';
export const EXAMPLE = { order_id: 'ord_example', total: 1999 };

export interface Platform {
  prefix: string;
  env: Record<string, string>;
  pki: TestPki;
  receiver: TestReceiver;
  registry: endpointsV1.EndpointRegistryServiceClient;
  ingest: eventsV1.EventIngestServiceClient;
  delivery: deliveryV1.DeliveryServiceClient;
  dispatcher: DispatcherApp;
  /** The dispatcher's own collections, read by tests to see delivery state. */
  models: DispatcherModels;
  registryAddress: string;
  stop(): Promise<void>;
}

export async function startPlatform(prefix: string, dispatcherEnv: Record<string, string>, resolver?: Resolver, logFor?: (service: string) => Logger): Promise<Platform> {
  const infra = infraFromEnv();
  const pki = makeTestPki();
  const receiver = new TestReceiver(pki);
  await receiver.start();
  const base = { ...isolatedServiceEnv(infra, prefix), GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: 'silent' };
  const silent = createLogger('test', 'silent');
  const logOf = (service: string) => logFor?.(service) ?? silent;
  // Run in reverse: the databases and topics go last, once nothing writes to them any more.
  const stops: (() => Promise<void>)[] = [
    async () => {
      await dropDatabases(infra.mongoUri, [`${prefix}_registry`, `${prefix}_ingest`, `${prefix}_dispatcher`]);
      await deleteTopics(infra.kafkaBrokers, prefix);
    },
    async () => receiver.stop(),
  ];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const reg = createRegistry(
      loadRegistryConfig({ ...base, MONGODB_DATABASE: `${prefix}_registry`, SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`, TARGET_ALLOWLIST: 'localhost,127.0.0.0/8,::1/128' }),
      logOf('endpoint-registry'),
    );
    await reg.start();
    stops.push(() => reg.stop());
    const registryAddress = `127.0.0.1:${reg.port}`;
    const ing = createIngest(loadIngestConfig({ ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress }), logOf('event-ingest'));
    await ing.start();
    stops.push(() => ing.stop());
    const env = { ...base, MONGODB_DATABASE: `${prefix}_dispatcher`, REGISTRY_ADDRESS: registryAddress, KAFKA_TOPIC_OPERATIONS: `${prefix}.operations`, ...dispatcherEnv };
    const dispatcherConfig = loadDispatcherConfig(env);
    const dispatcher = createDispatcher(dispatcherConfig, logOf('dispatcher'), { ca: [pki.ca], ...(resolver ? { resolver } : {}) });
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    const creds = grpc.credentials.createInsecure();
    const registry = new endpointsV1.EndpointRegistryServiceClient(registryAddress, creds);
    const ingest = new eventsV1.EventIngestServiceClient(`127.0.0.1:${ing.port}`, creds);
    const delivery = new deliveryV1.DeliveryServiceClient(`127.0.0.1:${dispatcher.port}`, creds);
    stops.push(async () => {
      registry.close();
      ingest.close();
      delivery.close();
    });
    const db = mongoose.createConnection(infra.mongoUri, { dbName: `${prefix}_dispatcher` });
    await db.asPromise();
    stops.push(() => db.close());
    await rpc(registry.createEventType.bind(registry), {
      name: EVENT_TYPE,
      description: 'An order was created',
      schemaJson: JSON.stringify({ type: 'object', required: ['order_id'], properties: { order_id: { type: 'string' }, total: { type: 'integer' } } }),
      exampleJson: JSON.stringify(EXAMPLE),
    });
    return { prefix, env, pki, receiver, registry, ingest, delivery, dispatcher, models: dispatcherModels(db, dispatcherConfig.retentionMs), registryAddress, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function createEndpoint(p: Platform, workspaceId: string, url: string, standardWebhooks = false): Promise<{ id: string; secret: string }> {
  const res = await rpc(p.registry.createEndpoint.bind(p.registry), {
    workspaceId,
    url,
    description: 'dispatcher test',
    subscription: { selection: { $case: 'eventTypes', value: { names: [EVENT_TYPE] } } },
    requestId: '',
    standardWebhooks,
  });
  return { id: res.endpoint!.id, secret: res.secret };
}

export async function publish(p: Platform, workspaceId: string, data: object): Promise<string> {
  const res = await rpc(p.ingest.publishEvent.bind(p.ingest), { event: { workspaceId, eventType: EVENT_TYPE, payload: Buffer.from(JSON.stringify(data)), idempotencyKey: '' } });
  return res.eventId;
}

export async function listAttempts(p: Platform, workspaceId: string, endpointId: string, filter: { kind?: deliveryV1.AttemptKind; outcome?: deliveryV1.AttemptOutcome; pageSize?: number; pageToken?: string } = {}) {
  return rpc(p.delivery.listAttempts.bind(p.delivery), { workspaceId, endpointId, kind: filter.kind ?? 0, outcome: filter.outcome ?? 0, pageSize: filter.pageSize ?? 100, pageToken: filter.pageToken ?? '', eventId: '' });
}

/** Reads the JSON records of a topic from the beginning (operational events). */
export async function topicReader(brokers: string, topic: string, groupId: string): Promise<{ records: Record<string, unknown>[]; stop(): Promise<void> }> {
  const kafka = new Kafka({ clientId: 'test-reader', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const consumer: Consumer = kafka.consumer({ groupId });
  const records: Record<string, unknown>[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (message.value) records.push(JSON.parse(message.value.toString('utf8')) as Record<string, unknown>);
    },
  });
  return { records, stop: () => consumer.disconnect() };
}

/** What became of a delivery, from the dispatcher's outcome collections: a success wins over earlier failures. */
export async function outcomeOf(p: Platform, deliveryId: string): Promise<{ state: 'succeeded' | 'failed'; attemptCount: number; reason?: string } | undefined> {
  const done = await p.models.delivered.findOne({ _id: deliveryId });
  if (done) return { state: 'succeeded', attemptCount: done.attemptCount };
  const failed = (await p.models.failed.find({ deliveryId }, { sort: { attemptCount: -1 }, limit: 1 }))[0]?.doc;
  return failed ? { state: 'failed', attemptCount: failed.attemptCount, reason: failed.reason } : undefined;
}

// Test harness for event-ingest integration specs: an in-process endpoint-registry (the catalog)
// and an in-process event-ingest, both on the real broker and database, isolated by a prefix
// (own databases, own topics, own consumer groups). Not a spec: shared by the *.int.spec.ts files.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Kafka, logLevel, type Consumer, type KafkaMessage } from 'kafkajs';
import { endpointsV1, eventsV1 } from '@hookline/proto';
import { createLogger } from '@hookline/service-kit';
import { dropDatabases, infraFromEnv, isolatedServiceEnv, rpc, REPO_ROOT, type Infra } from '@hookline/testing';
export { deleteTopics } from '@hookline/testing';
import { createApp as createRegistry, type RegistryApp } from '../../endpoint-registry/src/app';
import { loadConfig as loadRegistryConfig } from '../../endpoint-registry/src/config';
import { createApp, type IngestApp } from '../src/app';
import { loadConfig } from '../src/config';

/** Set HOOKLINE_TEST_LOG_LEVEL=info to see the services' logs while debugging a spec. */
const LOG_LEVEL = process.env.HOOKLINE_TEST_LOG_LEVEL ?? 'silent';

export interface Harness {
  infra: Infra;
  prefix: string;
  registry: RegistryApp;
  ingest: IngestApp;
  registryClient: endpointsV1.EndpointRegistryServiceClient;
  client: eventsV1.EventIngestServiceClient;
  topics: { events: string; ingest: string; ingestDlq: string };
  /** Creates an event type in the registry's catalog. */
  createType(name: string, schema: object, example: object): Promise<void>;
  /** Starts a fresh ingest app with the same settings (the previous one must be stopped). */
  restartIngest(): Promise<void>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  /** Brokers for event-ingest (default: the shared broker). The registry always uses the shared one. */
  ingestBrokers?: string;
  ingestEnv?: Record<string, string>;
  /** Reuse this registry port (to restart the registry on the same address). */
  registryPort?: number;
}

export async function startRegistry(infra: Infra, prefix: string, port = 0): Promise<RegistryApp> {
  const config = loadRegistryConfig({
    ...isolatedServiceEnv(infra, prefix),
    MONGODB_DATABASE: `${prefix}_registry`,
    SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    GRPC_PORT: String(port),
    GRPC_HOST: '127.0.0.1',
    LOG_LEVEL,
  });
  const app = createRegistry(config, createLogger('endpoint-registry', LOG_LEVEL));
  try {
    await app.start();
  } catch (err) {
    await app.stop();
    throw err;
  }
  return app;
}

export async function startHarness(prefix: string, options: HarnessOptions = {}): Promise<Harness> {
  const infra = infraFromEnv();
  const registry = await startRegistry(infra, prefix, options.registryPort);
  const registryAddress = `127.0.0.1:${registry.port}`;
  const env = {
    ...isolatedServiceEnv(infra, prefix),
    ...(options.ingestBrokers ? { KAFKA_BROKERS: options.ingestBrokers } : {}),
    MONGODB_DATABASE: `${prefix}_ingest`,
    REGISTRY_ADDRESS: registryAddress,
    GRPC_PORT: '0',
    GRPC_HOST: '127.0.0.1',
    LOG_LEVEL,
    ...options.ingestEnv,
  };
  const config = loadConfig(env);
  const startIngest = async (port: number) => {
    const app = createApp({ ...config, grpcPort: port }, createLogger('event-ingest', LOG_LEVEL));
    try {
      await app.start();
    } catch (err) {
      await app.stop();
      throw err;
    }
    return app;
  };
  let ingest: IngestApp;
  try {
    ingest = await startIngest(0);
  } catch (err) {
    await registry.stop();
    throw err;
  }
  const creds = grpc.credentials.createInsecure();
  const registryClient = new endpointsV1.EndpointRegistryServiceClient(registryAddress, creds);
  const client = new eventsV1.EventIngestServiceClient(`127.0.0.1:${ingest.port}`, creds);
  const h: Harness = {
    infra,
    prefix,
    registry,
    ingest,
    registryClient,
    client,
    topics: { events: config.kafka.topics.events.name, ingest: config.kafka.topics.ingest.name, ingestDlq: config.kafka.topics.ingestDlq.name },
    async createType(name, schema, example) {
      await rpc(registryClient.createEventType.bind(registryClient), { name, description: `test type ${name}`, schemaJson: JSON.stringify(schema), exampleJson: JSON.stringify(example) });
    },
    async restartIngest() {
      h.ingest = await startIngest(h.ingest.port);
    },
    async stop() {
      client.close();
      registryClient.close();
      await h.ingest.stop();
      await h.registry.stop();
      await dropDatabases(infra.mongoUri, [`${prefix}_ingest`, `${prefix}_registry`]);
    },
  };
  return h;
}


export function testKafka(brokers: string, clientId = 'event-ingest-test'): Kafka {
  return new Kafka({ clientId, brokers: brokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 3, initialRetryTime: 100 } });
}

/** Every record of a topic, read by a private consumer group from the beginning. */
export class TopicRecorder {
  readonly records: KafkaMessage[] = [];
  private consumer: Consumer | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly groupId: string,
  ) {}

  async start(): Promise<this> {
    this.consumer = this.kafka.consumer({ groupId: this.groupId, sessionTimeout: 30_000 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({ eachMessage: async ({ message }) => void this.records.push(message) });
    return this;
  }

  events(): eventsV1.EventRecord[] {
    return this.records.map((m) => eventsV1.EventRecord.decode(m.value!));
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

/** Records currently on a topic (end offsets summed over partitions). */
export async function topicSize(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}


export const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');

/** The grpc error of a call that must fail. */
export async function rpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** google.rpc.BadRequest field violations from grpc-status-details-bin, decoded by hand. */
export function fieldViolations(err: grpc.ServiceError): { field: string; description: string }[] {
  const bin = err.metadata?.get('grpc-status-details-bin')[0];
  if (!bin) return [];
  const fields = (buf: Buffer): [number, Buffer | number][] => {
    const out: [number, Buffer | number][] = [];
    let i = 0;
    const varint = () => {
      let n = 0;
      let shift = 0;
      for (;;) {
        const b = buf[i++]!;
        n += (b & 0x7f) * 2 ** shift;
        if (b < 0x80) return n;
        shift += 7;
      }
    };
    while (i < buf.length) {
      const tag = varint();
      if ((tag & 7) === 0) out.push([tag >> 3, varint()]);
      else {
        const len = varint();
        out.push([tag >> 3, buf.subarray(i, i + len)]);
        i += len;
      }
    }
    return out;
  };
  const result: { field: string; description: string }[] = [];
  for (const [no, any] of fields(bin as Buffer)) {
    if (no !== 3) continue;
    for (const [ano, value] of fields(any as Buffer)) {
      if (ano !== 2) continue;
      for (const [bno, fv] of fields(value as Buffer)) {
        if (bno !== 1) continue;
        const parts = Object.fromEntries(fields(fv as Buffer).map(([k, v]) => [k, (v as Buffer).toString('utf8')]));
        result.push({ field: parts[1] ?? '', description: parts[2] ?? '' });
      }
    }
  }
  return result;
}

/**
 * A private single-node Kafka for tests that stop the broker: started with the project's own
 * script on free ports and its own state dir, stopped only through its own pid file. The shared
 * broker is never touched.
 */
export class PrivateKafka {
  readonly stateDir = mkdtempSync(path.join(os.tmpdir(), 'hookline-ingest-kafka-'));
  port = 0;
  private controllerPort = 0;

  /** `env`: extra kafka.sh settings, e.g. HOOKLINE_KAFKA_EXTRA_CONFIG (a SASL_SSL listener). */
  constructor(private readonly env: Record<string, string> = {}) {}

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Picks the free ports now, for settings that must name them before start. */
  async ports(): Promise<{ port: number; controllerPort: number }> {
    if (this.port === 0) [this.port, this.controllerPort] = await Promise.all([freePort(), freePort()]);
    return { port: this.port, controllerPort: this.controllerPort };
  }

  async start(): Promise<void> {
    await this.ports();
    await this.script('launch');
    await this.script('wait');
  }

  async stop(): Promise<void> {
    await this.script('stop');
  }

  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      rmSync(this.stateDir, { recursive: true, force: true });
    }
  }

  /** Runs a Kafka CLI class (kafka.sh tool), e.g. ConfigCommand against the PLAINTEXT listener. */
  tool(...args: string[]): Promise<void> {
    return this.script('tool', args);
  }

  private script(command: string, args: string[] = []): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.env, HOOKLINE_KAFKA_PORT: String(this.port), HOOKLINE_KAFKA_CONTROLLER_PORT: String(this.controllerPort), HOOKLINE_STATE_DIR: this.stateDir, HOOKLINE_STOP_GRACE: '15' };
    // Unset, or kafka.sh would take the shared broker for "an external Kafka" and start nothing.
    delete env.KAFKA_BROKERS;
    delete env.HOOKLINE_LOCK_HELD;
    return new Promise((resolve, reject) => {
      execFile('bash', [path.join(REPO_ROOT, 'deploy/local/kafka.sh'), command, ...args], { env, timeout: 180_000 }, (err, _stdout, stderr) =>
        err ? reject(new Error(`kafka.sh ${command} failed: ${err.message}\n${stderr}`)) : resolve(),
      );
    });
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

// Kafka over TLS with SASL, as managed Kafka services require: the project's own local Kafka
// (deploy/local/kafka.sh) started privately with a SASL_SSL listener (Kafka's own settings, a
// certificate made at test time), SCRAM users created with Kafka's ConfigCommand. The three
// services use one mechanism each (registry PLAIN, ingest SCRAM-SHA-256, dispatcher
// SCRAM-SHA-512); an event published through event-ingest is delivered; a service given a
// wrong password refuses to start with one clear line.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createIngestClient, createRegistryClient, NO_RETRY } from '@hookline/client';
import { createLogger } from '@hookline/service-kit';
import { eventually, infraFromEnv, makeTestCa, makeTestPki, REPO_ROOT, TestReceiver, uniquePrefix } from '@hookline/testing';
import { createApp as createRegistry } from '../../endpoint-registry/src/app';
import { loadConfig as loadRegistryConfig } from '../../endpoint-registry/src/config';
import { createApp as createDispatcher } from '../../dispatcher/src/app';
import { loadConfig as loadDispatcherConfig } from '../../dispatcher/src/config';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { freePort, PrivateKafka } from './harness';

jest.setTimeout(240_000);

const silent = createLogger('test', 'silent');
const SCRAM_PASSWORD = `scram-${randomBytes(6).toString('hex')}`;
const PLAIN_PASSWORD = `plain-${randomBytes(6).toString('hex')}`;

describe('Kafka over SASL_SSL', () => {
  const prefix = uniquePrefix('sasl');
  const dir = mkdtempSync(path.join(tmpdir(), 'hookline-sasl-'));
  const ca = makeTestCa('kafka', dir);
  let kafka: PrivateKafka;
  let saslPort = 0;
  const stops: (() => Promise<void>)[] = [];

  /** What every service needs to reach the SASL_SSL listener, with its own mechanism. */
  const kafkaEnv = (mechanism: string, username: string, password: string) => {
    const passwordFile = path.join(dir, `${username}-${mechanism}.password`);
    writeFileSync(passwordFile, `${password}\n`);
    return {
      KAFKA_BROKERS: `127.0.0.1:${saslPort}`,
      KAFKA_TLS_CA_FILE: ca.caFile,
      KAFKA_TLS_SERVER_NAME: 'localhost',
      KAFKA_SASL_MECHANISM: mechanism,
      KAFKA_SASL_USERNAME: username,
      KAFKA_SASL_PASSWORD_FILE: passwordFile,
    };
  };

  beforeAll(async () => {
    const broker = ca.issue('broker', { server: true });
    // Kafka's PEM keystore: the private key followed by the certificate chain, in one file.
    const keystore = path.join(dir, 'broker-keystore.pem');
    writeFileSync(keystore, `${broker.key}${broker.cert}`);
    const extra = path.join(dir, 'sasl-ssl.properties');
    kafka = new PrivateKafka({ HOOKLINE_KAFKA_EXTRA_CONFIG: extra });
    stops.push(() => kafka.destroy());
    const { port: plainPort, controllerPort } = await kafka.ports();
    saslPort = await freePort();
    writeFileSync(
      extra,
      [
        `listeners=PLAINTEXT://127.0.0.1:${plainPort},CONTROLLER://127.0.0.1:${controllerPort},SASL_SSL://127.0.0.1:${saslPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${plainPort},SASL_SSL://127.0.0.1:${saslPort}`,
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL',
        'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
        `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_registry="${PLAIN_PASSWORD}";`,
        'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
        'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
        'ssl.keystore.type=PEM',
        `ssl.keystore.location=${keystore}`,
        'ssl.client.auth=none',
        '',
      ].join('\n'),
    );
    await kafka.start();
    // SCRAM credentials live in the cluster metadata: created over the PLAINTEXT listener.
    const scramUser = (name: string, mechanism: string) =>
      kafka.tool('org.apache.kafka.tools.ConfigCommand', '--bootstrap-server', `127.0.0.1:${plainPort}`, '--alter', '--entity-type', 'users', '--entity-name', name, '--add-config', `${mechanism}=[iterations=4096,password=${SCRAM_PASSWORD}]`);
    await Promise.all([scramUser('ingest', 'SCRAM-SHA-256'), scramUser('dispatcher', 'SCRAM-SHA-512')]);
  });

  afterAll(async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  });

  it('delivers an event published through event-ingest, every service on SASL_SSL', async () => {
    const infra = infraFromEnv();
    const base = { MONGODB_URI: infra.mongoUri, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: 'silent', KAFKA_TOPIC_EVENTS: `${prefix}.events`, KAFKA_TOPIC_INGEST: `${prefix}.ingest`, KAFKA_TOPIC_INGEST_DLQ: `${prefix}.dlq`, KAFKA_TOPIC_ENDPOINT_CHANGES: `${prefix}.changes`, KAFKA_TOPIC_OPERATIONS: `${prefix}.ops`, KAFKA_EVENTS_PARTITIONS: '2', KAFKA_INGEST_PARTITIONS: '1' };
    const pki = makeTestPki();
    const receiver = new TestReceiver(pki);
    await receiver.start();
    stops.push(async () => receiver.stop());
    const registry = createRegistry(loadRegistryConfig({ ...base, ...kafkaEnv('plain', 'registry', PLAIN_PASSWORD), MONGODB_DATABASE: `${prefix}_registry`, SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`, TARGET_ALLOWLIST: 'localhost,127.0.0.0/8' }), silent);
    stops.push(() => registry.stop());
    await registry.start();
    const registryAddress = `127.0.0.1:${registry.port}`;
    const ingest = createApp(loadConfig({ ...base, ...kafkaEnv('scram-sha-256', 'ingest', SCRAM_PASSWORD), MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress }), silent);
    stops.push(() => ingest.stop());
    await ingest.start();
    const dispatcher = createDispatcher(
      loadDispatcherConfig({ ...base, ...kafkaEnv('scram-sha-512', 'dispatcher', SCRAM_PASSWORD), MONGODB_DATABASE: `${prefix}_dispatcher`, REGISTRY_ADDRESS: registryAddress, TARGET_ALLOWLIST: '127.0.0.1/32', KAFKA_CONSUMER_GROUP: `${prefix}-dispatcher` }),
      silent,
      { ca: [pki.ca] },
    );
    stops.push(() => dispatcher.stop());
    await dispatcher.start();

    const reg = createRegistryClient({ address: registryAddress, retry: NO_RETRY });
    const pub = createIngestClient({ address: `127.0.0.1:${ingest.port}`, retry: NO_RETRY });
    stops.push(async () => {
      reg.close();
      pub.close();
    });
    await reg.createEventType({ name: 'order.created', schemaJson: JSON.stringify({ type: 'object' }), exampleJson: '{}' });
    const ws = `ws_${prefix}`;
    await reg.createEndpoint({ workspaceId: ws, url: receiver.url('/sasl'), subscription: { selection: { $case: 'allEvents', value: true } } });
    const { eventId } = await pub.publishEvent({ event: { workspaceId: ws, eventType: 'order.created', payload: Buffer.from('{"via":"sasl_ssl"}') } });
    const got = await eventually(() => receiver.on('/sasl').find((r) => r.headers['x-webhook-id'] === eventId), 90_000, 'the delivery over SASL_SSL');
    expect(JSON.parse(got.body.toString()).data).toEqual({ via: 'sasl_ssl' });
  });

  it('a service with a wrong password refuses to start with one clear line', async () => {
    const main = path.join(REPO_ROOT, 'apps/event-ingest/dist/main.js');
    expect(existsSync(main)).toBe(true); // built by `npm test` (npm run build)
    const env = {
      PATH: process.env.PATH ?? '',
      MONGODB_URI: infraFromEnv().mongoUri,
      MONGODB_DATABASE: `${prefix}_wrong`,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      KAFKA_TOPIC_EVENTS: `${prefix}.events`,
      ...kafkaEnv('scram-sha-256', 'ingest', 'not-the-password'),
    };
    const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    // Node 24's TimeoutNegativeWarning (kafkajs schedules a timer with a negative delay; not
    // ours, printed by every service that uses kafkajs) is the only other output allowed.
    const lines = stderr
      .replace(/\(node:\d+\) TimeoutNegativeWarning: .*\nTimeout duration was set to 1\.\n\(Use `node --trace-warnings \.\.\.` to show where the warning was created\)\n/g, '')
      .trim()
      .split('\n');
    expect(lines).toEqual([expect.stringMatching(/^event-ingest: failed to start: Kafka refused the SASL credentials \(.*\): check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD\(_FILE\)$/)]);
    // Neither the wrong password nor the right one appears anywhere the service wrote.
    expect(stderr + stdout).not.toContain('not-the-password');
    expect(stderr + stdout).not.toContain(SCRAM_PASSWORD);
  });
});

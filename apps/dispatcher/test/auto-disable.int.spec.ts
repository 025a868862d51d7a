// Auto-disable: the pipeline against the real database, registry and broker, with an injected
// clock so "5 days without a success" takes no time. Exactly one operational event per streak.
import * as grpc from '@grpc/grpc-js';
import { Kafka, logLevel } from 'kafkajs';
import { ensureTopics } from '@hookline/kafka';
import { endpointsV1 } from '@hookline/proto';
import { createLogger, timeOrderedId } from '@hookline/service-kit';
import { eventually, infraFromEnv, rpc, uniquePrefix } from '@hookline/testing';
import { AllowList } from '@hookline/url-policy';
import { HttpAttempter } from '../src/delivery/http-attempt';
import { DeliveryPipeline, type EventData } from '../src/delivery/pipeline';
import { ScheduleRetryPolicy } from '../src/delivery/retry-policy';
import { KafkaOperationalEvents } from '../src/operations/operational-events';
import { RegistryControl } from '../src/registry-client';
import { OutcomeWriter } from '../src/store/outcome-writer';
import { RegistrySubscribers } from '../src/subscribers/subscriber-cache';
import { createEndpoint, EVENT_TYPE, startPlatform, topicReader, type Platform } from './harness';

jest.setTimeout(60_000);

const DAY = 24 * 3600 * 1000;

describe('auto-disable after failing without a success', () => {
  const prefix = uniquePrefix('dad');
  const topic = `${prefix}.ops-direct`;
  let p: Platform;
  let client: endpointsV1.EndpointRegistryServiceClient;
  let http: HttpAttempter;
  let ops: Awaited<ReturnType<typeof topicReader>>;
  const kafka = new Kafka({ clientId: 'test', brokers: infraFromEnv().kafkaBrokers.split(','), logLevel: logLevel.NOTHING });
  const producer = kafka.producer();

  beforeAll(async () => {
    p = await startPlatform(prefix, { TARGET_ALLOWLIST: '127.0.0.1/32', SHUTDOWN_DEADLINE_MS: '3000' });
    client = new endpointsV1.EndpointRegistryServiceClient(p.registryAddress, grpc.credentials.createInsecure());
    http = new HttpAttempter({ allow: new AllowList(['127.0.0.1/32']), timeoutMs: 5_000, bodyLimit: 16 * 1024, connectionsPerOrigin: 4, ca: [p.pki.ca] });
    const admin = kafka.admin();
    await admin.connect();
    // Polls until the partition has a leader: a busy KRaft broker can answer
    // UNKNOWN_TOPIC_OR_PARTITION for a moment after creation (kafkajs' waitForLeaders gives up on it).
    await ensureTopics(admin, [{ name: topic, partitions: 1 }], 1);
    await admin.disconnect();
    await producer.connect();
    ops = await topicReader(infraFromEnv().kafkaBrokers, topic, `${prefix}-reader`);
  });

  afterAll(async () => {
    await ops?.stop();
    await producer.disconnect();
    await http?.close();
    client?.close();
    await p?.stop();
  });

  it('disables an endpoint failing for the whole period (reason failing) and announces it once; a success resets the streak', async () => {
    const ws = `ws_${prefix}`;
    let status = 500;
    p.receiver.behaviour.set('/dying', () => ({ status }));
    const ep = await createEndpoint(p, ws, p.receiver.url('/dying'));
    let clock = Date.now();
    const pipeline = new DeliveryPipeline({
      models: p.models,
      writer: new OutcomeWriter(p.models),
      // The retry of each failure is not followed here: the test makes every attempt itself.
      waiting: { wait: async () => undefined },
      http,
      subscribers: new RegistrySubscribers(client),
      control: new RegistryControl(client),
      ops: new KafkaOperationalEvents(producer, topic, 'test', createLogger('test', 'silent')),
      policy: new ScheduleRetryPolicy([60_000], 0),
      retentionMs: DAY,
      autoDisableAfterMs: 5 * DAY,
      log: createLogger('test', 'silent'),
      now: () => clock,
    });
    const attempt = async () => {
      const event: EventData = { id: timeOrderedId('evt'), workspaceId: ws, type: EVENT_TYPE, createdAt: new Date(clock), payload: Buffer.from('{"order_id":"x"}') };
      const attempted = await pipeline.attempt({ event, endpointId: ep.id, attemptsMade: 0, dueAt: clock, verify: false });
      await pipeline.record(attempted);
      return attempted.decision;
    };
    const enabled = async () => (await rpc(client.getEndpoint.bind(client), { workspaceId: ws, endpointId: ep.id })).endpoint!;

    // Failing for 4 days, then one success: the streak restarts.
    await attempt();
    clock += 4 * DAY;
    await attempt();
    status = 200;
    await attempt();
    status = 500;
    clock += 2 * DAY;
    await attempt(); // a new streak starts here
    clock += 4 * DAY;
    await attempt();
    expect((await enabled()).enabled).toBe(true);
    expect((await p.models.health.findById(`${ws}|${ep.id}`).lean())?.failingSince?.getTime()).toBe(clock - 4 * DAY);

    // Crossing 5 days without a success disables it.
    clock += DAY + 1;
    await attempt();
    const e = await enabled();
    expect(e.enabled).toBe(false);
    expect(e.disabledReason).toBe('failing');
    const record = await eventually(() => ops.records.find((r) => r.endpoint_id === ep.id), 15_000, 'the operational event');
    expect(record).toMatchObject({ type: 'endpoint.disabled', workspace_id: ws, reason: 'failing', failing_since: new Date(clock - 5 * DAY - 1).toISOString() });
    // Later deliveries find no enabled endpoint, make no request and announce nothing more.
    const before = p.receiver.on('/dying').length;
    const later = await attempt();
    expect(later).toMatchObject({ kind: 'failed', reason: 'endpoint deleted, disabled or no longer subscribed' });
    expect(p.receiver.on('/dying')).toHaveLength(before);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(ops.records.filter((r) => r.endpoint_id === ep.id)).toHaveLength(1);
  });
});

// A dispatcher SIGKILLed while one record holds its partition's commit point: the records it
// settled past that point travel in the commit's metadata, and the partition's next owner takes
// them as settled instead of sending them again (tier records) or verifying them against the
// database through the grace tier (events records). Dispatchers here are processes (built
// apps/dispatcher/dist), so one can be killed outright.
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { eventsV1 } from '@hookline/proto';
import { timeOrderedId } from '@hookline/service-kit';
import { eventually, infraFromEnv, startService, uniquePrefix, type ServiceProcess } from '@hookline/testing';
import { decodeSettled } from '../src/delivery/offset-tracker';
import { encodeTask } from '../src/retry/tasks';
import { createEndpoint, EVENT_TYPE, startPlatform, type Platform } from './harness';

jest.setTimeout(120_000);

const FAST = 30;

describe('a dispatcher killed behind an attempt that holds its commit point', () => {
  const prefix = uniquePrefix('hand');
  let p: Platform;
  let admin: Admin;
  let producer: Producer;
  const started: ServiceProcess[] = [];

  beforeAll(async () => {
    p = await startPlatform(prefix, {
      TARGET_ALLOWLIST: '127.0.0.1/32',
      RETRY_SCHEDULE: '1s',
      RETRY_JITTER_PERCENT: '0',
      ATTEMPT_TIMEOUT_MS: '30000',
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      MAX_IN_FLIGHT_PER_ENDPOINT: '4',
    });
    // This suite runs its own dispatchers, as processes it can kill.
    await p.dispatcher.stop();
    const kafka = new Kafka({ clientId: `${prefix}-test`, brokers: infraFromEnv().kafkaBrokers.split(','), logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
  });

  afterAll(async () => {
    for (const s of started) await s.stop('SIGKILL');
    await admin?.disconnect();
    await producer?.disconnect();
    await p?.stop();
  });

  const startDispatcher = async () => {
    const s = await startService('dispatcher', { ...p.env, LOG_LEVEL: 'info', NODE_EXTRA_CA_CERTS: p.pki.caFile });
    started.push(s);
    return s;
  };

  it('the next owner sends the unsettled record again and none of those settled after it', async () => {
    const ws = `ws_${prefix}_1`;
    p.receiver.behaviour.set('/hang', { status: 200, delayMs: 60_000 });
    const hang = await createEndpoint(p, ws, p.receiver.url('/hang'));
    const fast = await createEndpoint(p, ws, p.receiver.url('/fast'));
    const topic = `${p.env.KAFKA_TOPIC_RETRY_PREFIX}.now.v1`;
    const group = `${p.env.KAFKA_CONSUMER_GROUP}.retries`;
    const task = (n: number, endpointId: string) => {
      const event = { id: timeOrderedId('evt'), workspaceId: ws, type: EVENT_TYPE, createdAt: new Date(), payload: Buffer.from(JSON.stringify({ order_id: `o-${n}` })) };
      return { ...encodeTask({ event, endpointId, attemptsMade: 1, dueAt: Date.now(), verify: false }), partition: 0 };
    };
    const first = await startDispatcher();
    // One partition: a record whose attempt hangs, then records that are delivered at once.
    await producer.send({ topic, messages: [task(0, hang.id), ...Array.from({ length: FAST }, (_, i) => task(i + 1, fast.id))] });
    const fastIds = () => new Set(p.receiver.on('/fast').map((r) => r.headers['x-webhook-id']));
    await eventually(() => (p.receiver.on('/hang').length === 1 && fastIds().size === FAST ? true : undefined), 30_000, 'the first dispatcher to send every record');

    // The hanging attempt holds the commit point; the records settled behind it are in the metadata.
    const settledInCommit = async () => {
      const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const c = t!.partitions.find((x) => x.partition === 0)!;
      return decodeSettled(BigInt(c.offset), c.metadata).reduce((n, [start, end]) => n + Number(end - start), 0);
    };
    await eventually(async () => ((await settledInCommit()) === FAST ? true : undefined), 15_000, `the ${FAST} settled records in the commit's metadata`);

    await first.stop('SIGKILL');
    p.receiver.behaviour.set('/hang', { status: 200 });
    await startDispatcher();

    // The record that was never settled is attempted again (at least once), and the partition is
    // then committed to its end.
    await eventually(() => (p.receiver.on('/hang').length >= 2 ? true : undefined), 60_000, 'the unsettled record to be attempted again');
    await eventually(
      async () => {
        const [[t], ends] = await Promise.all([admin.fetchOffsets({ groupId: group, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
        const c = t!.partitions.find((x) => x.partition === 0)!;
        return BigInt(c.offset) >= BigInt(ends.find((e) => e.partition === 0)!.high) ? true : undefined;
      },
      30_000,
      'the partition to be committed to its end',
    );
    expect(fastIds().size).toBe(FAST);
    expect(p.receiver.on('/fast').length).toBe(FAST);
  });

  it('on the events topic, the next owner hands only the unsettled record to the grace tier', async () => {
    const [wsHang, wsFast] = [`ws_${prefix}_2`, `ws_${prefix}_3`];
    p.receiver.behaviour.set('/hang-event', { status: 200, delayMs: 60_000 });
    await createEndpoint(p, wsHang, p.receiver.url('/hang-event'));
    await createEndpoint(p, wsFast, p.receiver.url('/fast-event'));
    const topic = p.env.KAFKA_TOPIC_EVENTS!;
    const group = p.env.KAFKA_CONSUMER_GROUP!;
    // Records met again wait there: SPILL_AFTER_MS (2 s) + ATTEMPT_TIMEOUT_MS + 1 s.
    const grace = `${p.env.KAFKA_TOPIC_RETRY_PREFIX}.33s.v1`;
    const graceRecords = async () => (await admin.fetchTopicOffsets(grace)).reduce((n, o) => n + Number(o.high), 0);
    const record = (workspaceId: string, n: number) => ({
      partition: 0,
      key: workspaceId,
      value: Buffer.from(eventsV1.EventRecord.encode({ eventId: timeOrderedId('evt'), workspaceId, eventType: EVENT_TYPE, payload: Buffer.from(JSON.stringify({ order_id: `e-${n}` })), createTime: new Date() }).finish()),
    });
    const owner = started[started.length - 1]!;
    await producer.send({ topic, messages: [record(wsHang, 0), ...Array.from({ length: FAST }, (_, i) => record(wsFast, i + 1))] });
    await eventually(() => (p.receiver.on('/hang-event').length === 1 && p.receiver.on('/fast-event').length === FAST ? true : undefined), 30_000, 'every event sent once');
    const settledInCommit = async () => {
      const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const c = t!.partitions.find((x) => x.partition === 0)!;
      return decodeSettled(BigInt(c.offset), c.metadata).reduce((n, [start, end]) => n + Number(end - start), 0);
    };
    await eventually(async () => ((await settledInCommit()) === FAST ? true : undefined), 15_000, `the ${FAST} settled records in the commit's metadata`);
    const before = await graceRecords();

    await owner.stop('SIGKILL');
    await startDispatcher();
    await eventually(
      async () => {
        const [[t], ends] = await Promise.all([admin.fetchOffsets({ groupId: group, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
        const c = t!.partitions.find((x) => x.partition === 0)!;
        return BigInt(c.offset) >= BigInt(ends.find((e) => e.partition === 0)!.high) ? true : undefined;
      },
      60_000,
      'the events partition to be committed to its end',
    );
    // Only the delivery whose attempt never finished waits to be verified and attempted again.
    expect((await graceRecords()) - before).toBe(1);
    expect(p.receiver.on('/fast-event').length).toBe(FAST);
  });
});

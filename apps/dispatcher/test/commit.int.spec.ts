// When the dispatcher commits Kafka offsets, and what it writes: first-attempt successes go to
// `delivered` (never `deliveries`), a slow endpoint is spilled to `deliveries` so the partition's
// offset moves on, and a record met again (rebalance, crash) is not delivered twice.
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { eventsV1 } from '@hookline/proto';
import { eventually, infraFromEnv, rpc, uniquePrefix } from '@hookline/testing';
import { createEndpoint, EVENT_TYPE, publish, startPlatform, type Platform } from './harness';

jest.setTimeout(60_000);

const SPILL_AFTER_MS = 500;
const ATTEMPT_TIMEOUT_MS = 8_000;

describe('dispatcher offsets and the happy path', () => {
  const prefix = uniquePrefix('cmt');
  let p: Platform;
  let admin: Admin;
  let producer: Producer;
  let n = 0;
  const workspace = () => `ws_${prefix}_${++n}`;

  beforeAll(async () => {
    p = await startPlatform(prefix, {
      TARGET_ALLOWLIST: '127.0.0.1/32',
      RETRY_SCHEDULE: '200ms,200ms',
      RETRY_JITTER_PERCENT: '0',
      SCHEDULER_INTERVAL_MS: '100',
      SPILL_AFTER_MS: String(SPILL_AFTER_MS),
      ATTEMPT_TIMEOUT_MS: String(ATTEMPT_TIMEOUT_MS),
      SHUTDOWN_DEADLINE_MS: '3000',
    });
    const kafka = new Kafka({ clientId: `${prefix}-test`, brokers: infraFromEnv().kafkaBrokers.split(','), logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
  });

  afterAll(async () => {
    await admin?.disconnect();
    await producer?.disconnect();
    await p?.stop();
  });

  /** True once the group's committed offsets reach the end of every partition of the events topic. */
  async function allCommitted(): Promise<boolean> {
    const topic = p.env.KAFKA_TOPIC_EVENTS!;
    const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId: p.env.KAFKA_CONSUMER_GROUP!, topics: [topic] })]);
    return ends.every((e) => BigInt(committed!.partitions.find((c) => c.partition === e.partition)?.offset ?? '-1') >= BigInt(e.high) || e.high === '0');
  }

  /** Sends an events-topic record as event-ingest would (the same event again, or one the dispatcher has not seen). */
  async function sendRecord(eventId: string, workspaceId: string, payload: object): Promise<void> {
    const value = Buffer.from(eventsV1.EventRecord.encode({ eventId, workspaceId, eventType: EVENT_TYPE, payload: Buffer.from(JSON.stringify(payload)), createTime: new Date() }).finish());
    await producer.send({ topic: p.env.KAFKA_TOPIC_EVENTS!, messages: [{ key: workspaceId, value }] });
  }

  it('a first-attempt success is recorded in `delivered` and the attempt log, never in `deliveries`, and its offset is committed', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/ok'));
    const eventId = await publish(p, ws, { order_id: 'o-ok' });
    const id = `${eventId}|${ep.id}`;
    const done = await eventually(() => p.models.delivered.findById(id).lean().then((d) => d ?? undefined), 15_000, 'the delivered record');
    expect(done).toMatchObject({ eventId, workspaceId: ws, endpointId: ep.id, eventType: EVENT_TYPE, attemptCount: 1 });
    expect(await p.models.attempts.countDocuments({ eventId, endpointId: ep.id, outcome: 'succeeded' })).toBe(1);
    expect(await p.models.deliveries.findById(id).lean()).toBeNull();
    await eventually(async () => ((await allCommitted()) ? true : undefined), 10_000, 'the offsets to be committed');
  });

  it('a slow endpoint does not hold its partition: the delivery is spilled to `deliveries` (leased) and the offset committed before the answer', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/slow', { status: 200, delayMs: 6_000 });
    const ep = await createEndpoint(p, ws, p.receiver.url('/slow'));
    const eventId = await publish(p, ws, { order_id: 'o-slow' });
    const id = `${eventId}|${ep.id}`;
    const spilled = await eventually(() => p.models.deliveries.findById(id).lean().then((d) => d ?? undefined), 10_000, 'the spilled delivery');
    expect(spilled).toMatchObject({ state: 'pending', attemptCount: 0 });
    expect(spilled.leaseOwner).not.toBe('');
    await eventually(async () => ((await allCommitted()) ? true : undefined), 5_000, 'the offsets to be committed');
    // Committed while the endpoint is still answering.
    expect((await p.models.deliveries.findById(id).lean())?.state).toBe('pending');
    const finished = await eventually(async () => {
      const d = await p.models.deliveries.findById(id).lean();
      return d?.state === 'succeeded' ? d : undefined;
    }, 20_000, 'the slow delivery to succeed');
    expect(finished).toMatchObject({ attemptCount: 1, leaseOwner: '' });
    expect(await p.models.delivered.findById(id).lean()).toBeNull();
    expect(p.receiver.on('/slow')).toHaveLength(1);
  });

  it('a record met again after its delivery succeeded is checked against `delivered` and not sent twice', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/again'));
    const eventId = await publish(p, ws, { order_id: 'o-again' });
    const id = `${eventId}|${ep.id}`;
    await eventually(() => p.models.delivered.findById(id).lean().then((d) => d ?? undefined), 15_000, 'the first delivery');
    await sendRecord(eventId, ws, { order_id: 'o-again' });
    const verified = await eventually(async () => {
      const d = await p.models.deliveries.findById(id).lean();
      return d?.state === 'succeeded' ? d : undefined;
    }, 20_000, 'the record met again to be verified as delivered');
    expect(verified).toMatchObject({ verify: false, attemptCount: 1 });
    expect(p.receiver.on('/again')).toHaveLength(1);
  });

  it('a record met again whose delivery never happened is delivered once, after the grace period', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/lost'));
    // As if another replica stored the event and died before attempting it.
    const eventId = `evt_${prefix.replace(/[^0-9a-f]/g, '').padEnd(32, '0').slice(0, 32)}`;
    await p.models.events.create({ _id: eventId, workspaceId: ws, eventType: EVENT_TYPE, payload: Buffer.from('{"order_id":"o-lost"}'), createdAt: new Date(), expiresAt: new Date(Date.now() + 3_600_000) });
    const sentAt = Date.now();
    await sendRecord(eventId, ws, { order_id: 'o-lost' });
    const [got] = await eventually(() => (p.receiver.on('/lost').length > 0 ? p.receiver.on('/lost') : undefined), 30_000, 'the delivery');
    expect(got!.headers['x-webhook-id']).toBe(eventId);
    // Not before the replica that had the record could have finished its attempt.
    expect(got!.receivedAt - sentAt).toBeGreaterThanOrEqual(SPILL_AFTER_MS + ATTEMPT_TIMEOUT_MS);
    await eventually(async () => ((await p.models.deliveries.findById(`${eventId}|${ep.id}`).lean())?.state === 'succeeded' ? true : undefined), 10_000, 'succeeded');
    await new Promise((r) => setTimeout(r, 500));
    expect(p.receiver.on('/lost')).toHaveLength(1);
  });

  it('RetryDelivery sends a first-attempt success again', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/resend'));
    const eventId = await publish(p, ws, { order_id: 'o-resend' });
    await eventually(() => p.models.delivered.findById(`${eventId}|${ep.id}`).lean().then((d) => d ?? undefined), 15_000, 'the first delivery');
    const res = await rpc(p.delivery.retryDelivery.bind(p.delivery), { workspaceId: ws, endpointId: ep.id, eventId });
    expect(res.delivery).toMatchObject({ eventId, endpointId: ep.id, attemptCount: 1 });
    const got = await eventually(() => (p.receiver.on('/resend').length >= 2 ? p.receiver.on('/resend') : undefined), 15_000, 'the second send');
    expect(got.map((r) => r.headers['x-webhook-id'])).toEqual([eventId, eventId]);
    await eventually(async () => {
      const d = await p.models.deliveries.findById(`${eventId}|${ep.id}`).lean();
      return d?.state === 'succeeded' && d.attemptCount === 2 ? true : undefined;
    }, 10_000, 'the resend recorded');
  });
});

// When the dispatcher commits Kafka offsets, and what it writes: a first-attempt success is two
// inserts (`attempts`, `delivered`) and nothing on a retry tier; deliveries queued behind a slow
// endpoint go to the shortest tier so the partition's offset moves on; a record met again
// (rebalance, crash) is not delivered twice, nor committed before the attempt it repeats.
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { eventsV1 } from '@hookline/proto';
import { encodeTask } from '../src/retry/tasks';
import { eventually, infraFromEnv, rpc, uniquePrefix } from '@hookline/testing';
import { createEndpoint, EVENT_TYPE, outcomeOf, publish, startPlatform, type Platform } from './harness';

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
      SPILL_AFTER_MS: String(SPILL_AFTER_MS),
      MAX_IN_FLIGHT_PER_ENDPOINT: '1',
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

  /** True once `groupId`'s committed offsets reach the end of every partition of `topic`. */
  async function committedTo(topic: string, groupId: string): Promise<boolean> {
    const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
    return ends.every((e) => BigInt(committed!.partitions.find((c) => c.partition === e.partition)?.offset ?? '-1') >= BigInt(e.high) || e.high === '0');
  }
  const allCommitted = () => committedTo(p.env.KAFKA_TOPIC_EVENTS!, p.env.KAFKA_CONSUMER_GROUP!);
  /** This suite's retry tiers: now (due at once), 200ms (its schedule) and 9500ms (records met again: SPILL_AFTER_MS + ATTEMPT_TIMEOUT_MS + 1 s). */
  const tiers = () => ['now', '200ms', '9500ms'].map((t) => `${p.env.KAFKA_TOPIC_RETRY_PREFIX}.${t}.v1`);
  const tierRecords = async () => {
    let n = 0;
    for (const t of tiers()) n += (await admin.fetchTopicOffsets(t)).reduce((a, o) => a + Number(o.high), 0);
    return n;
  };
  const tierCommitted = async () => {
    for (const t of tiers()) if (!(await committedTo(t, `${p.env.KAFKA_CONSUMER_GROUP}.retries`))) return false;
    return true;
  };

  /** Sends an events-topic record as event-ingest would (the same event again, or one the dispatcher has not seen). */
  async function sendRecord(eventId: string, workspaceId: string, payload: object, createTime: Date, appendedAt?: Date): Promise<void> {
    const value = Buffer.from(eventsV1.EventRecord.encode({ eventId, workspaceId, eventType: EVENT_TYPE, payload: Buffer.from(JSON.stringify(payload)), createTime }).finish());
    await producer.send({ topic: p.env.KAFKA_TOPIC_EVENTS!, messages: [{ key: workspaceId, value, ...(appendedAt ? { timestamp: String(appendedAt.getTime()) } : {}) }] });
  }

  it('a first-attempt success is recorded in `delivered` and the attempt log, nothing waits on a retry tier, and its offset is committed', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/ok'));
    const before = await tierRecords();
    const eventId = await publish(p, ws, { order_id: 'o-ok' });
    const id = `${eventId}|${ep.id}`;
    const done = await eventually(() => p.models.delivered.findOne({ _id: id }).then((d) => d ?? undefined), 15_000, 'the delivered record');
    expect(done).toMatchObject({ _id: id, attemptCount: 1 });
    expect(done!.deliveredAt).toBeInstanceOf(Date);
    expect(await p.models.attempts.countDocuments({ eventId, endpointId: ep.id, outcome: 'succeeded' })).toBe(1);
    await eventually(async () => ((await allCommitted()) ? true : undefined), 10_000, 'the offsets to be committed');
    // The attempt did not wait for the event to be stored, but the offset did.
    expect(await p.models.events.countDocuments({ _id: eventId })).toBe(1);
    expect(await tierRecords()).toBe(before);
  });

  it('deliveries queued behind a slow endpoint go to the shortest tier after SPILL_AFTER_MS, so the offset moves on; each is delivered once', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/slow', { status: 200, delayMs: 1_500 });
    await createEndpoint(p, ws, p.receiver.url('/slow'));
    const before = await tierRecords();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await publish(p, ws, { order_id: `o-slow-${i}` }));
    // One in flight at a time (MAX_IN_FLIGHT_PER_ENDPOINT=1): the queued ones wait in the tier, not in memory.
    await eventually(async () => ((await tierRecords()) > before ? true : undefined), 10_000, 'deliveries handed to the tier');
    await eventually(async () => ((await allCommitted()) ? true : undefined), 10_000, 'the events offsets to be committed');
    const got = await eventually(() => (new Set(p.receiver.on('/slow').map((r) => r.headers['x-webhook-id'])).size === 4 ? p.receiver.on('/slow') : undefined), 30_000, 'every slow delivery');
    expect(got.map((r) => r.headers['x-webhook-id']).sort()).toEqual([...ids].sort());
    await eventually(async () => ((await tierCommitted()) ? true : undefined), 10_000, 'the tier offsets to be committed');
  });

  it('a second record of an event delivered already (read again, or produced twice) is checked against `delivered` and not sent twice', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/again'));
    const eventId = await publish(p, ws, { order_id: 'o-again' });
    const id = `${eventId}|${ep.id}`;
    const first = await eventually(() => p.models.delivered.findOne({ _id: id }).then((d) => d ?? undefined), 15_000, 'the first delivery');
    const before = await tierRecords();
    await sendRecord(eventId, ws, { order_id: 'o-again' }, first.eventCreatedAt);
    // The record met again waits in the tier (verify), is checked after the grace, and is dropped.
    await eventually(async () => ((await tierRecords()) > before ? true : undefined), 10_000, 'the record met again in the tier');
    await new Promise((r) => setTimeout(r, SPILL_AFTER_MS + ATTEMPT_TIMEOUT_MS + 1_000));
    await eventually(async () => ((await tierCommitted()) ? true : undefined), 15_000, 'the verified task to be committed');
    expect(p.receiver.on('/again')).toHaveLength(1);
    expect(await p.models.attempts.countDocuments({ deliveryId: id })).toBe(1);
  });

  it('a record met again whose delivery never happened is delivered once, after the grace period', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/lost'));
    // As if another replica stored the event and died before attempting it: the record is from
    // before this suite's dispatcher got the partition (its Kafka timestamp an hour ago).
    const eventId = `evt_${prefix.replace(/[^0-9a-f]/g, '').padEnd(32, '0').slice(0, 32)}`;
    const createdAt = new Date();
    await (await p.models.events.forWrite(createdAt))!.create({ _id: eventId, workspaceId: ws, eventType: EVENT_TYPE, payload: Buffer.from('{"order_id":"o-lost"}'), createdAt, expiresAt: new Date(Date.now() + 3_600_000) });
    const sentAt = Date.now();
    await sendRecord(eventId, ws, { order_id: 'o-lost' }, createdAt, new Date(Date.now() - 3_600_000));
    const [got] = await eventually(() => (p.receiver.on('/lost').length > 0 ? p.receiver.on('/lost') : undefined), 30_000, 'the delivery');
    expect(got!.headers['x-webhook-id']).toBe(eventId);
    // Not before the replica that had the record could have finished its attempt.
    expect(got!.receivedAt - sentAt).toBeGreaterThanOrEqual(SPILL_AFTER_MS + ATTEMPT_TIMEOUT_MS);
    await eventually(async () => ((await outcomeOf(p, `${eventId}|${ep.id}`))?.state === 'succeeded' ? true : undefined), 10_000, 'succeeded');
    await new Promise((r) => setTimeout(r, 500));
    expect(p.receiver.on('/lost')).toHaveLength(1);
  });

  it('tier tasks marked verify are checked against `delivered`: one whose delivery succeeded since is dropped, a resend of a success goes on', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/taken'));
    const eventId = await publish(p, ws, { order_id: 'o-taken' });
    const first = await eventually(() => p.models.delivered.findOne({ _id: `${eventId}|${ep.id}` }).then((d) => d ?? undefined), 15_000, 'the first delivery');
    const event = { id: eventId, workspaceId: ws, type: EVENT_TYPE, createdAt: first.eventCreatedAt, payload: Buffer.from(JSON.stringify({ order_id: 'o-taken' })) };
    // As a stopping replica hands back tasks it was running: the first is the attempt that became
    // the success above (attempts made 0 < the 1 it took); the second is what RetryDelivery
    // produced after that success (attempts made 1: the success is not after it), so it is sent.
    const now = Date.now();
    await producer.send({ topic: tiers()[0]!, messages: [encodeTask({ event, endpointId: ep.id, attemptsMade: 0, dueAt: now, verify: true }), encodeTask({ event, endpointId: ep.id, attemptsMade: 1, dueAt: now, verify: true })] });
    await eventually(() => (p.receiver.on('/taken').length >= 2 ? true : undefined), 15_000, 'the resend');
    await eventually(async () => ((await tierCommitted()) ? true : undefined), 15_000, 'the tier records to be committed');
    expect(p.receiver.on('/taken')).toHaveLength(2);
    expect((await p.models.attempts.find({ deliveryId: `${eventId}|${ep.id}` })).map((a) => a.doc.attemptNumber).sort()).toEqual([1, 2]);
  });

  it('a tier record repeating an attempt still running is sent once, and is not committed before that attempt is recorded', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/twin', { status: 200, delayMs: 6_000 });
    const ep = await createEndpoint(p, ws, p.receiver.url('/twin'));
    const eventId = `evt_${prefix.replace(/[^0-9a-f]/g, '').padEnd(30, '1').slice(0, 30)}aa`;
    const event = { id: eventId, workspaceId: ws, type: EVENT_TYPE, createdAt: new Date(), payload: Buffer.from('{"order_id":"o-twin"}') };
    const task = () => encodeTask({ event, endpointId: ep.id, attemptsMade: 1, dueAt: Date.now(), verify: false });
    const [nowTier, scheduleTier] = tiers();
    await producer.send({ topic: nowTier!, messages: [task()] });
    await eventually(() => (p.receiver.on('/twin').length === 1 ? true : undefined), 10_000, 'the attempt to be under way');
    // The same attempt again, on another tier (as a record read again after its partition came
    // back, or a second copy produced before a crash): its record must wait for the running one,
    // which may still fail to be recorded and need this copy then.
    await producer.send({ topic: scheduleTier!, messages: [task()] });
    await new Promise((r) => setTimeout(r, 4_000));
    expect(p.receiver.on('/twin')).toHaveLength(1);
    expect(await committedTo(scheduleTier!, `${p.env.KAFKA_CONSUMER_GROUP}.retries`)).toBe(false);
    await eventually(() => outcomeOf(p, `${eventId}|${ep.id}`).then((o) => (o?.state === 'succeeded' ? true : undefined)), 15_000, 'the attempt to be recorded');
    await eventually(async () => ((await committedTo(scheduleTier!, `${p.env.KAFKA_CONSUMER_GROUP}.retries`)) ? true : undefined), 10_000, 'the copy to be committed after it');
    expect(p.receiver.on('/twin')).toHaveLength(1);
  });

  it('RetryDelivery sends a first-attempt success again, as attempt 2', async () => {
    const ws = workspace();
    const ep = await createEndpoint(p, ws, p.receiver.url('/resend'));
    const eventId = await publish(p, ws, { order_id: 'o-resend' });
    await eventually(() => p.models.delivered.findOne({ _id: `${eventId}|${ep.id}` }).then((d) => d ?? undefined), 15_000, 'the first delivery');
    const res = await rpc(p.delivery.retryDelivery.bind(p.delivery), { workspaceId: ws, endpointId: ep.id, eventId });
    expect(res.delivery).toMatchObject({ eventId, endpointId: ep.id, attemptCount: 1 });
    const got = await eventually(() => (p.receiver.on('/resend').length >= 2 ? p.receiver.on('/resend') : undefined), 15_000, 'the second send');
    expect(got.map((r) => r.headers['x-webhook-id'])).toEqual([eventId, eventId]);
    const second = await eventually(() => p.models.attempts.findOne({ deliveryId: `${eventId}|${ep.id}`, attemptNumber: 2 }).then((a) => a ?? undefined), 10_000, 'the resend recorded');
    expect(second.outcome).toBe('succeeded');
  });
});

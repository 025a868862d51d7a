// The Kafka ingestion path, fed by a plain kafkajs producer written here (not the project's
// producer code): valid records reach the events topic, poison records land in the DLQ with the
// reason, the partition never stalls, offsets are committed only past finished records, and an
// unavailable dependency is retried, never dead-lettered.
import { status } from '@grpc/grpc-js';
import type { Admin, KafkaMessage, Producer } from 'kafkajs';
import { eventually, rpc, uniquePrefix } from '@hookline/testing';
import { deleteTopics, json, rpcError, startHarness, startRegistry, testKafka, TopicRecorder, type Harness } from './harness';

jest.setTimeout(60_000);

const header = (m: KafkaMessage, name: string) => m.headers?.[name]?.toString();

describe('Kafka ingest path (webhooks.ingest.v1 → events / DLQ)', () => {
  const prefix = uniquePrefix('kin');
  const group = `event-ingest.${prefix}.ingest`;
  let h: Harness;
  let producer: Producer;
  let admin: Admin;
  let events: TopicRecorder;
  let dlq: TopicRecorder;
  const kafka = () => testKafka(h.infra.kafkaBrokers, 'outside-publisher');
  const eventsOf = (ws: string) => events.events().filter((e) => e.workspaceId === ws);

  /** The group's committed offset on a partition of the ingest topic (-1: none). */
  const committed = async (partition: number) => {
    const [topic] = await admin.fetchOffsets({ groupId: group, topics: [h.topics.ingest] });
    return Number(topic!.partitions.find((p) => p.partition === partition)?.offset ?? -1);
  };

  beforeAll(async () => {
    // Default catalog cache (30 s): proves a just-created type is not refused for a whole TTL.
    h = await startHarness(prefix);
    await h.createType('invoice.paid', { type: 'object', required: ['invoice_id', 'amount'], properties: { invoice_id: { type: 'string' }, amount: { type: 'integer', minimum: 0 } } }, { invoice_id: 'a', amount: 1 });
    const k = kafka();
    producer = k.producer({ allowAutoTopicCreation: false });
    admin = k.admin();
    await Promise.all([producer.connect(), admin.connect()]);
    [events, dlq] = await Promise.all([
      new TopicRecorder(k, h.topics.events, `${prefix}-events-recorder`).start(),
      new TopicRecorder(k, h.topics.ingestDlq, `${prefix}-dlq-recorder`).start(),
    ]);
  });

  afterAll(async () => {
    await Promise.all([events?.stop(), dlq?.stop(), producer?.disconnect(), admin?.disconnect()]);
    await h?.stop();
    if (h) await deleteTopics(h.infra.kafkaBrokers, prefix);
  });

  it('dead-letters poison with the reason, and the valid records behind it flow; restarts resume after the commit', async () => {
    const ws = `ws_${uniquePrefix('')}`;
    const hdr = (eventType: string, extra: Record<string, string> = {}) => ({ 'workspace-id': ws, 'event-type': eventType, ...extra });
    const messages = [
      { key: ws, value: json({ invoice_id: 'v1', amount: 1 }), headers: hdr('invoice.paid', { 'x-trace': 'keep-me' }) },
      { key: ws, value: Buffer.from('{"invoice_id": "x", amount'), headers: hdr('invoice.paid') }, // bad JSON
      { key: ws, value: json({ any: 1 }), headers: hdr('no.such.type') }, // unknown type
      { key: ws, value: json({ invoice_id: 'h', amount: 1 }), headers: { 'x-trace': 'no-envelope' } }, // missing headers
      { key: ws, value: json({ invoice_id: 's', amount: -5 }), headers: hdr('invoice.paid', { 'hookline-error-code': 'FORGED' }) }, // schema
      { key: ws, value: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), headers: hdr('invoice.paid') }, // invalid UTF-8
      { key: ws, value: json({ invoice_id: 'v2', amount: 2 }), headers: hdr('invoice.paid') },
      { key: ws, value: json({ invoice_id: 'v3', amount: 3 }), headers: hdr('invoice.paid', { 'idempotency-key': 'k-3' }) },
      { key: ws, value: json({ invoice_id: 'v3-again', amount: 3 }), headers: hdr('invoice.paid', { 'idempotency-key': 'k-3' }) }, // duplicate
    ];
    const [meta] = await producer.send({ topic: h.topics.ingest, acks: -1, messages });
    const partition = meta!.partition;
    const base = Number(meta!.baseOffset);

    const published = await eventually(() => (eventsOf(ws).length >= 3 ? eventsOf(ws) : undefined), 30_000, 'the valid records on the events topic');
    expect(published.map((e) => Buffer.from(e.payload).toString())).toEqual([messages[0]!.value, messages[6]!.value, messages[7]!.value].map((b) => b.toString()));
    expect(Buffer.from(published[0]!.payload).equals(messages[0]!.value)).toBe(true);
    expect(published.every((e) => e.eventType === 'invoice.paid' && e.eventId.startsWith('evt_'))).toBe(true);

    const mine = () => dlq.records.filter((m) => header(m, 'hookline-source-topic') === h.topics.ingest && Number(header(m, 'hookline-source-partition')) === partition);
    const dead = await eventually(() => (mine().length >= 5 ? mine() : undefined), 30_000, 'the poison records in the DLQ');
    expect(dead).toHaveLength(5);
    const byOffset = new Map(dead.map((m) => [Number(header(m, 'hookline-source-offset')) - base, m]));
    expect([...byOffset.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
    for (const [i, m] of byOffset) {
      // The original record, untouched.
      expect(m.key!.toString()).toBe(ws);
      expect(m.value!.equals(messages[i]!.value)).toBe(true);
      expect(header(m, 'hookline-dead-lettered-at')).toMatch(/^\d{4}-/);
    }
    const bad = byOffset.get(1)!;
    expect(header(bad, 'hookline-error-code')).toBe('INVALID_ARGUMENT');
    expect(header(bad, 'hookline-error-field')).toBe('value');
    expect(header(bad, 'hookline-error-message')).toContain('is not valid JSON');
    expect(header(bad, 'workspace-id')).toBe(ws);

    const unknown = byOffset.get(2)!;
    expect(header(unknown, 'hookline-error-code')).toBe('NOT_FOUND');
    expect(header(unknown, 'hookline-error-message')).toContain('no.such.type');

    const noEnvelope = byOffset.get(3)!;
    expect(header(noEnvelope, 'hookline-error-code')).toBe('INVALID_ARGUMENT');
    expect(header(noEnvelope, 'hookline-error-field')).toBe('headers.workspace-id');
    expect(JSON.parse(header(noEnvelope, 'hookline-error-violations')!)).toEqual([
      { field: 'headers.workspace-id', description: 'is required' },
      { field: 'headers.event-type', description: 'is required' },
    ]);
    expect(header(noEnvelope, 'x-trace')).toBe('no-envelope');

    const schema = byOffset.get(4)!;
    expect(header(schema, 'hookline-error-code')).toBe('INVALID_ARGUMENT'); // not the forged value
    expect(header(schema, 'hookline-error-field')).toBe('value/amount');
    expect(header(schema, 'hookline-error-message')).toContain('value/amount must be >= 0');

    expect(header(byOffset.get(5)!, 'hookline-error-message')).toContain('not valid UTF-8');

    // Everything finished is committed: the group's offset is past the last record.
    const end = base + messages.length;
    await eventually(async () => ((await committed(partition)) === end ? true : undefined), 15_000, 'the offset commit');

    // A restarted ingest resumes at the commit: nothing is re-published or re-dead-lettered.
    await h.ingest.stop();
    const [after] = await producer.send({ topic: h.topics.ingest, acks: -1, messages: [{ key: ws, value: json({ invoice_id: 'v4', amount: 4 }), headers: hdr('invoice.paid') }] });
    await h.restartIngest();
    await eventually(() => (eventsOf(ws).length >= 4 ? true : undefined), 30_000, 'the record sent while ingest was down');
    await eventually(async () => ((await committed(after!.partition)) === Number(after!.baseOffset) + 1 ? true : undefined), 15_000, 'the commit after restart');
    expect(eventsOf(ws).map((e) => JSON.parse(Buffer.from(e.payload).toString()).invoice_id)).toEqual(['v1', 'v2', 'v3', 'v4']);
    expect(mine()).toHaveLength(5);
  });

  it('retries, never dead-letters, while the catalog (endpoint-registry) is unavailable, then publishes', async () => {
    const ws = `ws_${uniquePrefix('')}`;
    // A type ingest has never fetched, so nothing is cached for it.
    await h.createType('refund.issued', { type: 'object', required: ['refund_id'] }, { refund_id: 'r' });
    const port = h.registry.port;
    await h.registry.stop();

    const [meta] = await producer.send({
      topic: h.topics.ingest,
      acks: -1,
      messages: [{ key: ws, value: json({ refund_id: 'r1' }), headers: { 'workspace-id': ws, 'event-type': 'refund.issued' } }],
    });
    const offset = Number(meta!.baseOffset);
    // Give the consumer time to try (several attempts at 200 ms → 5 s backoff); it must hold the record.
    await new Promise((r) => setTimeout(r, 3_000));
    const dlqOf = () => dlq.records.filter((m) => header(m, 'workspace-id') === ws);
    expect(dlqOf()).toHaveLength(0);
    expect(eventsOf(ws)).toHaveLength(0);
    expect(await committed(meta!.partition)).toBeLessThanOrEqual(offset);

    h.registry = await startRegistry(h.infra, prefix, port);
    const [event] = await eventually(() => (eventsOf(ws).length > 0 ? eventsOf(ws) : undefined), 45_000, 'the held record to be published');
    expect(Buffer.from(event!.payload).toString()).toBe('{"refund_id":"r1"}');
    await eventually(async () => ((await committed(meta!.partition)) === offset + 1 ? true : undefined), 15_000, 'the commit');
    expect(dlqOf()).toHaveLength(0);
  });

  it('accepts a type over gRPC within moments of its creation (unknown types are not cached for the catalog TTL)', async () => {
    const ws = `ws_${uniquePrefix('')}`;
    const publish = () => rpc(h.client.publishEvent.bind(h.client), { event: { workspaceId: ws, eventType: 'plan.changed', payload: json({ plan: 'pro' }), idempotencyKey: '' } });
    expect((await rpcError(publish())).code).toBe(status.NOT_FOUND);
    await h.createType('plan.changed', { type: 'object' }, { plan: 'free' });
    const res = await eventually(() => publish(), 10_000, 'the new type to be accepted');
    expect(res.eventId).toMatch(/^evt_/);
  });
});

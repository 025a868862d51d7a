// EventIngestService over gRPC against the real broker and database: validation against the
// registry's catalog, size limit, batches, idempotency (sequential and racing), and the exact
// record that lands on the events topic.
import { status } from '@grpc/grpc-js';
import mongoose from 'mongoose';
import { eventsV1 } from '@hookline/proto';
import { eventually, rpc, uniquePrefix } from '@hookline/testing';
import { deleteTopics, fieldViolations, json, rpcError, startHarness, testKafka, TopicRecorder, type Harness } from './harness';

jest.setTimeout(60_000);

const INVOICE_SCHEMA = {
  type: 'object',
  required: ['invoice_id', 'amount'],
  additionalProperties: false,
  properties: { invoice_id: { type: 'string' }, amount: { type: 'integer', minimum: 0 }, note: { type: 'string' } },
};

describe('EventIngestService (gRPC)', () => {
  const prefix = uniquePrefix('ing');
  let h: Harness;
  let events: TopicRecorder;
  const kafka = () => testKafka(h.infra.kafkaBrokers);

  const publish = (event: Partial<eventsV1.EventInput>) =>
    rpc(h.client.publishEvent.bind(h.client), { event: { workspaceId: '', eventType: '', payload: Buffer.alloc(0), idempotencyKey: '', ...event } });
  const validate = (event: Partial<eventsV1.EventInput>) =>
    rpc(h.client.validateEvent.bind(h.client), { event: { workspaceId: '', eventType: '', payload: Buffer.alloc(0), idempotencyKey: '', ...event } });
  const forWorkspace = (ws: string) => events.events().filter((e) => e.workspaceId === ws);
  /**
   * Proves nothing else was published for `ws` before now: a marker event is published last and,
   * being keyed by workspace, lands on the same partition after anything published earlier.
   */
  const settledRecords = async (ws: string) => {
    const marker = await publish({ workspaceId: ws, eventType: 'invoice.paid', payload: json({ invoice_id: 'marker', amount: 0 }) });
    await eventually(() => (forWorkspace(ws).some((e) => e.eventId === marker.eventId) ? true : undefined), 30_000, `marker of ${ws}`);
    return forWorkspace(ws).filter((e) => e.eventId !== marker.eventId);
  };
  const ws = () => `ws_${uniquePrefix('')}`;

  beforeAll(async () => {
    h = await startHarness(prefix, { ingestEnv: { CATALOG_CACHE_SECONDS: '1', KAFKA_INGEST_ENABLED: 'false' } });
    await h.createType('invoice.paid', INVOICE_SCHEMA, { invoice_id: 'in_1', amount: 1 });
    await h.createType('blob.stored', { type: 'object' }, {});
    events = await new TopicRecorder(kafka(), h.topics.events, `${prefix}-recorder`).start();
  });

  afterAll(async () => {
    await events?.stop();
    await h?.stop();
    if (h) await deleteTopics(h.infra.kafkaBrokers, prefix);
  });

  it('publishes an EventRecord carrying the payload byte for byte, after the broker acknowledged', async () => {
    const w = ws();
    // Odd spacing, key order and non-ASCII: re-serialising would change these bytes.
    const payload = Buffer.from('{ "note":"héllo ✓ \\u00e9",  "amount": 4200, "invoice_id":"in_42" }', 'utf8');
    const res = await publish({ workspaceId: w, eventType: 'invoice.paid', payload });
    expect(res.eventId).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(res.duplicate).toBe(false);
    expect(res.createTime).toBeInstanceOf(Date);

    const record = await eventually(() => events.records.find((m) => m.value && eventsV1.EventRecord.decode(m.value).eventId === res.eventId), 30_000, 'the event record');
    const decoded = eventsV1.EventRecord.decode(record.value!);
    expect(decoded).toEqual({ eventId: res.eventId, workspaceId: w, eventType: 'invoice.paid', payload: expect.anything(), createTime: res.createTime });
    expect(Buffer.from(decoded.payload).equals(payload)).toBe(true);
    expect(record.key!.toString()).toBe(w);
    expect(record.headers!['event-type']!.toString()).toBe('invoice.paid');

    // Time-ordered ids: a later event sorts after.
    const later = await publish({ workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'in_43', amount: 1 }) });
    expect(later.eventId > res.eventId).toBe(true);
  });

  it('rejects schema violations with INVALID_ARGUMENT listing every path and reason, and publishes nothing', async () => {
    const w = ws();
    const err = await rpcError(publish({ workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 7, amount: -1, extra: true }) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    const violations = fieldViolations(err);
    expect(violations).toEqual(
      expect.arrayContaining([
        { field: 'event.payload/invoice_id', description: 'must be string' },
        { field: 'event.payload/amount', description: 'must be >= 0' },
        { field: 'event.payload', description: 'unexpected property "extra"' },
      ]),
    );
    expect(err.details).toContain('event.payload/amount must be >= 0');

    const missing = await rpcError(publish({ workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'x' }) }));
    expect(missing.code).toBe(status.INVALID_ARGUMENT);
    expect(fieldViolations(missing)).toEqual([{ field: 'event.payload', description: "must have required property 'amount'" }]);

    expect(await settledRecords(w)).toEqual([]);
  });

  it('lists envelope problems together (workspace id, event type, idempotency key)', async () => {
    const err = await rpcError(publish({ workspaceId: 'bad id!', eventType: 'Not-A-Type', payload: json({}), idempotencyKey: 'k'.repeat(257) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(fieldViolations(err).map((v) => v.field).sort()).toEqual(['event.event_type', 'event.idempotency_key', 'event.workspace_id']);
    const none = await rpcError(rpc(h.client.publishEvent.bind(h.client), { event: undefined }));
    expect(none.code).toBe(status.INVALID_ARGUMENT);
  });

  it('enforces the payload size limit (default 256 KiB) and says the limit', async () => {
    const w = ws();
    const LIMIT = 256 * 1024;
    const sized = (n: number) => Buffer.from(`{"pad":"${'a'.repeat(n - 10)}"}`, 'utf8');
    expect(sized(LIMIT).length).toBe(LIMIT);
    const err = await rpcError(publish({ workspaceId: w, eventType: 'blob.stored', payload: sized(LIMIT + 1) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain(`the limit is ${LIMIT} bytes`);
    expect(err.details).toContain('256 KiB');
    expect(fieldViolations(err)[0]!.field).toBe('event.payload');

    const ok = await publish({ workspaceId: w, eventType: 'blob.stored', payload: sized(LIMIT) });
    expect(ok.duplicate).toBe(false);
  });

  it('answers NOT_FOUND for an unknown event type, and accepts it soon after it is created', async () => {
    const w = ws();
    const err = await rpcError(publish({ workspaceId: w, eventType: 'order.shipped', payload: json({ id: 1 }) }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('order.shipped');

    await h.createType('order.shipped', { type: 'object', required: ['id'] }, { id: 1 });
    const res = await eventually(() => publish({ workspaceId: w, eventType: 'order.shipped', payload: json({ id: 1 }) }), 10_000, 'the new type to be accepted');
    expect(res.eventId).toMatch(/^evt_/);
  });

  it('picks up a schema change within the catalog cache time', async () => {
    const w = ws();
    await h.createType('user.renamed', { type: 'object' }, { name: 'a' });
    await publish({ workspaceId: w, eventType: 'user.renamed', payload: json({ name: 'a' }) });
    await rpc(h.registryClient.updateEventType.bind(h.registryClient), {
      name: 'user.renamed',
      description: '',
      schemaJson: JSON.stringify({ type: 'object', required: ['name', 'previous_name'] }),
      exampleJson: JSON.stringify({ name: 'a', previous_name: 'b' }),
      updateMask: ['schema_json', 'example_json'],
    });
    const err = await eventually(async () => {
      const e = await rpcError(publish({ workspaceId: w, eventType: 'user.renamed', payload: json({ name: 'a' }) })).catch(() => undefined);
      return e?.code === status.INVALID_ARGUMENT ? e : undefined;
    }, 15_000, 'the new schema to apply');
    expect(err.details).toContain('previous_name');
  });

  it('rejects malformed JSON, invalid UTF-8 and an empty payload', async () => {
    const w = ws();
    const bad = await rpcError(publish({ workspaceId: w, eventType: 'invoice.paid', payload: Buffer.from('{"invoice_id": "x", amount: 1}') }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(fieldViolations(bad)).toEqual([{ field: 'event.payload', description: expect.stringContaining('is not valid JSON') }]);

    const latin1 = Buffer.concat([Buffer.from('{"invoice_id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('","amount":1}')]);
    const utf = await rpcError(publish({ workspaceId: w, eventType: 'invoice.paid', payload: latin1 }));
    expect(utf.code).toBe(status.INVALID_ARGUMENT);
    expect(fieldViolations(utf)).toEqual([{ field: 'event.payload', description: 'is not valid UTF-8' }]);

    const empty = await rpcError(publish({ workspaceId: w, eventType: 'invoice.paid', payload: Buffer.alloc(0) }));
    expect(empty.code).toBe(status.INVALID_ARGUMENT);
    expect(await settledRecords(w)).toEqual([]);
  });

  it('answers PublishEvents with one result per item, in order, publishing only the accepted ones', async () => {
    const w = ws();
    const item = (eventType: string, payload: Buffer, idempotencyKey = '') => ({ workspaceId: w, eventType, payload, idempotencyKey });
    const res = await rpc(h.client.publishEvents.bind(h.client), {
      events: [
        item('invoice.paid', json({ invoice_id: 'a', amount: 1 })),
        item('invoice.paid', json({ invoice_id: 'b', amount: 'lots' })),
        item('nope.unknown', json({})),
        item('invoice.paid', json({ invoice_id: 'c', amount: 3 }), 'batch-key'),
        item('invoice.paid', json({ invoice_id: 'c', amount: 3 }), 'batch-key'),
        item('invoice.paid', Buffer.from('{not json')),
      ],
    });
    const r = res.results.map((x) => x.outcome!);
    expect(r.map((o) => o.$case)).toEqual(['accepted', 'error', 'error', 'accepted', 'accepted', 'error']);
    const accepted = (i: number) => (r[i] as { $case: 'accepted'; value: eventsV1.PublishEventResponse }).value;
    const error = (i: number) => (r[i] as { $case: 'error'; value: eventsV1.ItemError }).value;
    expect(error(1).code).toBe(status.INVALID_ARGUMENT);
    expect(error(1).fieldViolations).toEqual([{ field: 'events[1].payload/amount', description: 'must be integer' }]);
    expect(error(2).code).toBe(status.NOT_FOUND);
    expect(error(5).code).toBe(status.INVALID_ARGUMENT);
    expect(error(5).fieldViolations[0]!.field).toBe('events[5].payload');
    expect(accepted(3).duplicate).toBe(false);
    expect(accepted(4)).toEqual({ ...accepted(3), duplicate: true });

    const published = await settledRecords(w);
    expect(published.map((e) => e.eventId).sort()).toEqual([accepted(0).eventId, accepted(3).eventId].sort());
  });

  it('validates batch size', async () => {
    expect((await rpcError(rpc(h.client.publishEvents.bind(h.client), { events: [] }))).code).toBe(status.INVALID_ARGUMENT);
    const one = { workspaceId: 'w', eventType: 'blob.stored', payload: json({}), idempotencyKey: '' };
    const err = await rpcError(rpc(h.client.publishEvents.bind(h.client), { events: new Array(1001).fill(one) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('at most 1000');
  });

  it('publishes a batch larger than one broker request (1 MiB) in full', async () => {
    const w = ws();
    const big = (i: number) => Buffer.from(`{"i":${i},"pad":"${'b'.repeat(250 * 1024)}"}`);
    const res = await rpc(h.client.publishEvents.bind(h.client), {
      events: [0, 1, 2, 3, 4].map((i) => ({ workspaceId: w, eventType: 'blob.stored', payload: big(i), idempotencyKey: `big-${i}` })),
    });
    expect(res.results.map((x) => x.outcome!.$case)).toEqual(['accepted', 'accepted', 'accepted', 'accepted', 'accepted']);
    const published = await settledRecords(w);
    expect(published).toHaveLength(5);
    expect(published.map((e) => JSON.parse(Buffer.from(e.payload).toString()).i)).toEqual([0, 1, 2, 3, 4]);
  });

  it('treats a repeated idempotency key as a duplicate of the original (sequential), per workspace', async () => {
    const w = ws();
    const e = { workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'i', amount: 1 }), idempotencyKey: 'order-1' };
    const first = await publish(e);
    const second = await publish(e);
    // Even with a different payload, the key decides.
    const third = await publish({ ...e, payload: json({ invoice_id: 'other', amount: 2 }) });
    expect(first.duplicate).toBe(false);
    expect(second).toEqual({ ...first, duplicate: true });
    expect(third).toEqual({ ...first, duplicate: true });

    const otherWs = ws();
    const elsewhere = await publish({ ...e, workspaceId: otherWs });
    expect(elsewhere.duplicate).toBe(false);
    expect(elsewhere.eventId).not.toBe(first.eventId);

    expect((await settledRecords(w)).map((x) => x.eventId)).toEqual([first.eventId]);
  });

  it('lets exactly one of 20 racing calls with the same key publish', async () => {
    const w = ws();
    const e = { workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'race', amount: 5 }), idempotencyKey: 'race-key' };
    const results = await Promise.all(Array.from({ length: 20 }, () => publish(e)));
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(new Set(results.map((r) => r.eventId)).size).toBe(1);
    const published = await settledRecords(w);
    expect(published.map((x) => x.eventId)).toEqual([results[0]!.eventId]);
  });

  it('takes over a claim abandoned by a crash (pending, no ack, lapsed) under the SAME event id, once', async () => {
    const w = ws();
    // What a process that died between claiming the key and the broker's ack leaves behind.
    const conn = await mongoose.createConnection(h.infra.mongoUri, { serverSelectionTimeoutMS: 5_000 }).asPromise();
    const crashedId = 'evt_0000000000007000800000000000dead';
    try {
      const past = new Date(Date.now() - 60_000);
      await conn
        .useDb(`${prefix}_ingest`)
        .collection<{ _id: string; [field: string]: unknown }>('idempotency_keys')
        .insertOne({ _id: `${w}\u0000crash-key`, eventId: crashedId, createdAt: past, expiresAt: new Date(Date.now() + 3_600_000), state: 'pending', claimedUntil: past });
    } finally {
      await conn.close();
    }
    const e = { workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'crash', amount: 7 }), idempotencyKey: 'crash-key' };
    const retried = await publish(e);
    expect(retried).toMatchObject({ eventId: crashedId, duplicate: false });
    const again = await Promise.all([publish(e), publish(e)]);
    expect(again).toEqual([{ ...retried, duplicate: true }, { ...retried, duplicate: true }]);
    expect((await settledRecords(w)).map((x) => x.eventId)).toEqual([crashedId]);
  });

  it('ValidateEvent makes the same checks and publishes nothing', async () => {
    const w = ws();
    await expect(validate({ workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'v', amount: 1 }), idempotencyKey: 'val-1' })).resolves.toEqual({});
    const invalid = await rpcError(validate({ workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'v' }) }));
    expect(invalid.code).toBe(status.INVALID_ARGUMENT);
    expect(fieldViolations(invalid)[0]!.field).toBe('event.payload');
    expect((await rpcError(validate({ workspaceId: w, eventType: 'no.such', payload: json({}) }))).code).toBe(status.NOT_FOUND);
    expect(await settledRecords(w)).toEqual([]);
    // Validating did not claim the key either.
    const real = await publish({ workspaceId: w, eventType: 'invoice.paid', payload: json({ invoice_id: 'v', amount: 1 }), idempotencyKey: 'val-1' });
    expect(real.duplicate).toBe(false);
  });
});

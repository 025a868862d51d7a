// Broker stopped mid-test: PublishEvent answers UNAVAILABLE (retryable), nothing is half-written,
// and once the broker is back the same calls succeed. The broker here is a PRIVATE single-node
// Kafka started with deploy/local/kafka.sh on its own ports and state dir; the shared broker is
// never stopped (the in-process registry keeps using the shared one).
import { status } from '@grpc/grpc-js';
import { eventually, rpc, uniquePrefix } from '@hookline/testing';
import { json, PrivateKafka, rpcError, startHarness, testKafka, TopicRecorder, type Harness } from './harness';

jest.setTimeout(150_000);

describe('broker outage', () => {
  const prefix = uniquePrefix('out');
  const broker = new PrivateKafka();
  let h: Harness;

  const publish = (payload: Buffer, idempotencyKey = '') =>
    rpc(h.client.publishEvent.bind(h.client), { event: { workspaceId: 'ws_outage', eventType: 'invoice.paid', payload, idempotencyKey } });

  beforeAll(async () => {
    await broker.start();
    h = await startHarness(prefix, { ingestBrokers: broker.brokers, ingestEnv: { KAFKA_INGEST_ENABLED: 'false' } });
    await h.createType('invoice.paid', { type: 'object', required: ['invoice_id'] }, { invoice_id: 'a' });
  }, 150_000);

  afterAll(async () => {
    try {
      await h?.stop();
    } finally {
      await broker.destroy();
    }
  }, 60_000);

  it('answers UNAVAILABLE while the broker is down, publishes nothing, and recovers when it is back', async () => {
    const before = await publish(json({ invoice_id: 'before' }));
    expect(before.duplicate).toBe(false);

    await broker.stop();
    const [keyed, plain] = await Promise.all([
      rpcError(publish(json({ invoice_id: 'during-keyed' }), 'outage-key')),
      rpcError(publish(json({ invoice_id: 'during-plain' }))),
    ]);
    expect(keyed.code).toBe(status.UNAVAILABLE);
    expect(keyed.details).toMatch(/retry/);
    expect(plain.code).toBe(status.UNAVAILABLE);

    await broker.start();
    // The client's retry with the same key is accepted once, as a new (not duplicate) event.
    const retried = await eventually(() => publish(json({ invoice_id: 'during-keyed' }), 'outage-key'), 60_000, 'publishing after the broker is back');
    expect(retried.duplicate).toBe(false);
    const again = await publish(json({ invoice_id: 'during-keyed' }), 'outage-key');
    expect(again).toEqual({ ...retried, duplicate: true });
    const after = await publish(json({ invoice_id: 'after' }));

    const recorder = await new TopicRecorder(testKafka(broker.brokers), h.topics.events, `${prefix}-recorder`).start();
    try {
      await eventually(() => (recorder.events().some((e) => e.eventId === after.eventId) ? true : undefined), 30_000, 'the events');
      const got = recorder.events().map((e) => ({ id: e.eventId, invoice: JSON.parse(Buffer.from(e.payload).toString()).invoice_id as string }));
      const of = (invoice: string) => got.filter((g) => g.invoice === invoice);
      expect(of('before')).toEqual([{ id: before.eventId, invoice: 'before' }]);
      expect(of('after')).toEqual([{ id: after.eventId, invoice: 'after' }]);
      // A produce that timed out cannot be recalled and may still land if the broker comes back
      // within kafkajs' own retry window. With an idempotency key it can only ever land under the
      // SAME event id as the successful retry (receivers and the dispatcher dedupe on it) ...
      expect(of('during-keyed').length).toBeGreaterThanOrEqual(1);
      expect(new Set(of('during-keyed').map((g) => g.id))).toEqual(new Set([retried.eventId]));
      // ... and without one, at most once.
      expect(of('during-plain').length).toBeLessThanOrEqual(1);
    } finally {
      await recorder.stop();
    }
  });
});

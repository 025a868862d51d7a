// Live deliveries through the real broker and database: retries, redirects, 410, Retry-After,
// manual retry and recovery, and a hanging endpoint beside healthy ones on one partition.
import { deliveryV1 } from '@hookline/proto';
import { verifySignature256 } from '@hookline/signing';
import { eventually, infraFromEnv, rpc, uniquePrefix } from '@hookline/testing';
import { createEndpoint, listAttempts, outcomeOf, publish, startPlatform, topicReader, type Platform } from './harness';

jest.setTimeout(60_000);

const { SUCCEEDED, FAILED } = { SUCCEEDED: deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED, FAILED: deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_FAILED };
const PER_ENDPOINT = 2;

describe('dispatcher live deliveries', () => {
  const prefix = uniquePrefix('dlv');
  let p: Platform;
  let ops: Awaited<ReturnType<typeof topicReader>>;
  let n = 0;
  const workspace = () => `ws_${prefix}_${++n}`;

  beforeAll(async () => {
    p = await startPlatform(prefix, {
      TARGET_ALLOWLIST: '127.0.0.1/32',
      RETRY_SCHEDULE: '200ms,200ms,200ms',
      RETRY_JITTER_PERCENT: '0',
      MAX_IN_FLIGHT_PER_ENDPOINT: String(PER_ENDPOINT),
      ATTEMPT_TIMEOUT_MS: '10000',
      SHUTDOWN_DEADLINE_MS: '3000',
    });
    ops = await topicReader(infraFromEnv().kafkaBrokers, `${prefix}.operations`, `${prefix}-ops-reader`);
  });

  afterAll(async () => {
    await ops?.stop();
    await p?.stop();
  });

  it('retries after 500s with the same X-Webhook-Id, then succeeds and stops', async () => {
    const ws = workspace();
    let calls = 0;
    p.receiver.behaviour.set('/flaky', () => (++calls <= 2 ? { status: 500, body: 'not yet' } : { status: 200, body: 'ok' }));
    const ep = await createEndpoint(p, ws, p.receiver.url('/flaky'));
    const eventId = await publish(p, ws, { order_id: 'o-flaky' });

    const got = await eventually(() => (p.receiver.on('/flaky').length >= 3 ? p.receiver.on('/flaky') : undefined), 20_000, 'three attempts');
    expect(got.map((r) => r.headers['x-webhook-id'])).toEqual([eventId, eventId, eventId]);
    for (const r of got) expect(verifySignature256(r.body, ep.secret, r.headers['x-signature-256'])).toBe(true);
    // The schedule is a lower bound: no retry before its 200 ms.
    expect(got[1]!.receivedAt - got[0]!.receivedAt).toBeGreaterThanOrEqual(200);
    expect(got[2]!.receivedAt - got[1]!.receivedAt).toBeGreaterThanOrEqual(200);

    const attempts = await eventually(async () => {
      const r = await listAttempts(p, ws, ep.id);
      return r.attempts.length === 3 ? r.attempts : undefined;
    }, 10_000, 'three attempt records');
    // Newest first.
    expect(attempts.map((a) => [a.attemptNumber, a.outcome, a.responseStatus])).toEqual([
      [3, SUCCEEDED, 200],
      [2, FAILED, 500],
      [1, FAILED, 500],
    ]);
    expect(attempts[1]!.responseBody).toBe('not yet');
    expect(attempts[0]!.resolvedIp).toBe('127.0.0.1');
    expect(attempts[0]!.requestHeaders['x-webhook-id']).toBe(eventId);
    expect(await outcomeOf(p, `${eventId}|${ep.id}`)).toMatchObject({ state: 'succeeded', attemptCount: 3 });
    // The attempt log says where a delivery stands: the failed attempts name their retry time.
    expect(attempts[1]!.nextAttemptTime).toBeInstanceOf(Date);
    expect(attempts[0]!.nextAttemptTime).toBeUndefined();
    // Nothing more after the success.
    await new Promise((r) => setTimeout(r, 600));
    expect(p.receiver.on('/flaky')).toHaveLength(3);
  });

  it('never follows a 3xx: the Location target receives nothing, and the exhausted delivery is failed', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/moved', { status: 302, headers: { location: p.receiver.url('/moved-target') } });
    const ep = await createEndpoint(p, ws, p.receiver.url('/moved'));
    const eventId = await publish(p, ws, { order_id: 'o-moved' });
    const d = await eventually(() => outcomeOf(p, `${eventId}|${ep.id}`), 20_000, 'the delivery to be exhausted');
    expect(d.state).toBe('failed');
    expect(d.attemptCount).toBe(4); // first attempt + 3 retries
    expect(d.reason).toMatch(/redirect 302 not followed; no retries left after 4 attempts/);
    expect(p.receiver.on('/moved')).toHaveLength(4);
    expect(p.receiver.on('/moved-target')).toHaveLength(0);
    const { attempts } = await listAttempts(p, ws, ep.id, { outcome: FAILED });
    expect(attempts).toHaveLength(4);
    expect(attempts[0]!.responseStatus).toBe(302);
  });

  it('410 Gone: no retry, the endpoint is disabled in the registry (reason gone), and an operational event says so', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/gone', { status: 410, body: 'gone' });
    const ep = await createEndpoint(p, ws, p.receiver.url('/gone'));
    const eventId = await publish(p, ws, { order_id: 'o-gone' });
    const got = await eventually(async () => {
      const r = await rpc(p.registry.getEndpoint.bind(p.registry), { workspaceId: ws, endpointId: ep.id });
      return r.endpoint?.enabled === false ? r.endpoint : undefined;
    }, 20_000, 'the endpoint to be disabled');
    expect(got.disabledReason).toBe('gone');
    const record = await eventually(() => ops.records.find((r) => r.endpoint_id === ep.id), 15_000, 'the operational event');
    expect(record).toMatchObject({ type: 'endpoint.disabled', workspace_id: ws, endpoint_id: ep.id, reason: 'gone' });
    expect(await eventually(() => outcomeOf(p, `${eventId}|${ep.id}`), 10_000, 'the outcome')).toMatchObject({ state: 'failed', attemptCount: 1 });
    await new Promise((r) => setTimeout(r, 600));
    expect(p.receiver.on('/gone')).toHaveLength(1);
  });

  it('honours Retry-After on 429: the next attempt does not come before it', async () => {
    const ws = workspace();
    let calls = 0;
    p.receiver.behaviour.set('/busy', () => (++calls === 1 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200, body: 'ok' }));
    await createEndpoint(p, ws, p.receiver.url('/busy'));
    await publish(p, ws, { order_id: 'o-busy' });
    const got = await eventually(() => (p.receiver.on('/busy').length >= 2 ? p.receiver.on('/busy') : undefined), 20_000, 'the second attempt');
    // The schedule says 200 ms; the endpoint said 2 s.
    expect(got[1]!.receivedAt - got[0]!.receivedAt).toBeGreaterThanOrEqual(2_000);
  });

  it('RetryDelivery and RecoverEndpoint re-send failed deliveries', async () => {
    const ws = workspace();
    let healthy = false;
    p.receiver.behaviour.set('/recover', () => (healthy ? { status: 200, body: 'ok' } : { status: 500 }));
    const ep = await createEndpoint(p, ws, p.receiver.url('/recover'));
    const e1 = await publish(p, ws, { order_id: 'o-r1' });
    const e2 = await publish(p, ws, { order_id: 'o-r2' });
    await eventually(async () => ((await p.models.failed.countDocuments({ endpointId: ep.id })) === 2 ? true : undefined), 20_000, 'both deliveries to be exhausted');
    const before = p.receiver.on('/recover').length;
    expect(before).toBe(8);
    healthy = true;

    const retried = await rpc(p.delivery.retryDelivery.bind(p.delivery), { workspaceId: ws, endpointId: ep.id, eventId: e1 });
    expect(retried.delivery).toMatchObject({ eventId: e1, state: deliveryV1.DeliveryState.DELIVERY_STATE_PENDING });
    await eventually(() => (p.receiver.on('/recover').slice(before).some((r) => r.headers['x-webhook-id'] === e1) ? true : undefined), 10_000, 'the manual retry');
    await eventually(async () => ((await outcomeOf(p, `${e1}|${ep.id}`))?.state === 'succeeded' ? true : undefined), 10_000, 'e1 succeeded');

    const since = new Date(Date.now() - 60_000);
    const recovered = await rpc(p.delivery.recoverEndpoint.bind(p.delivery), { workspaceId: ws, endpointId: ep.id, since });
    expect(recovered.deliveriesRequeued).toBe(1);
    await eventually(async () => ((await outcomeOf(p, `${e2}|${ep.id}`))?.state === 'succeeded' ? true : undefined), 10_000, 'e2 recovered');
    const after = p.receiver.on('/recover').slice(before).map((r) => r.headers['x-webhook-id']);
    expect(after.sort()).toEqual([e1, e2].sort());
    expect((await rpc(p.delivery.recoverEndpoint.bind(p.delivery), { workspaceId: ws, endpointId: ep.id, since })).deliveriesRequeued).toBe(0);

    // Another workspace's id sees nothing.
    await expect(rpc(p.delivery.retryDelivery.bind(p.delivery), { workspaceId: `${ws}x`, endpointId: ep.id, eventId: e1 })).rejects.toMatchObject({ code: 5 });
  });

  it('ListDeliveries says where each delivery stands, pages without repeats, and filters by state and event', async () => {
    const ws = workspace();
    const { PENDING, SUCCEEDED: DONE, FAILED: ENDED, UNSPECIFIED } = {
      PENDING: deliveryV1.DeliveryState.DELIVERY_STATE_PENDING,
      SUCCEEDED: deliveryV1.DeliveryState.DELIVERY_STATE_SUCCEEDED,
      FAILED: deliveryV1.DeliveryState.DELIVERY_STATE_FAILED,
      UNSPECIFIED: deliveryV1.DeliveryState.DELIVERY_STATE_UNSPECIFIED,
    };
    p.receiver.behaviour.set('/ld', (r) => {
      const body = r.body.toString();
      if (body.includes('o-ld-fail')) return { status: 500, body: 'no' };
      if (body.includes('o-ld-wait')) return { status: 429, headers: { 'retry-after': '3600' } };
      return { status: 200, body: 'ok' };
    });
    const ep = await createEndpoint(p, ws, p.receiver.url('/ld'));
    const ok1 = await publish(p, ws, { order_id: 'o-ld-ok1' });
    const fail = await publish(p, ws, { order_id: 'o-ld-fail' });
    const ok2 = await publish(p, ws, { order_id: 'o-ld-ok2' });
    const wait = await publish(p, ws, { order_id: 'o-ld-wait' });
    const list = (req: Partial<deliveryV1.ListDeliveriesRequest>) =>
      rpc(p.delivery.listDeliveries.bind(p.delivery), { workspaceId: ws, endpointId: ep.id, state: UNSPECIFIED, pageSize: 0, pageToken: '', eventId: '', ...req });
    const all = await eventually(async () => {
      const r = await list({});
      return r.deliveries.length === 4 && r.deliveries.every((d) => d.state !== PENDING || d.eventId === wait) ? r : undefined;
    }, 20_000, 'four deliveries, only the 429 one pending');
    expect(all.nextPageToken).toBe('');
    const byEvent = new Map(all.deliveries.map((d) => [d.eventId, d]));
    expect(byEvent.get(ok1)).toMatchObject({ state: DONE, attemptCount: 1, latestResponseStatus: 200, eventType: 'order.created', nextAttemptTime: undefined });
    expect(byEvent.get(ok2)).toMatchObject({ state: DONE, attemptCount: 1 });
    expect(byEvent.get(fail)).toMatchObject({ state: ENDED, attemptCount: 4, latestResponseStatus: 500, nextAttemptTime: undefined });
    const pending = byEvent.get(wait)!;
    expect(pending).toMatchObject({ state: PENDING, attemptCount: 1, latestResponseStatus: 429 });
    // Retry-After is a floor: the next attempt is an hour away.
    expect(pending.nextAttemptTime!.getTime()).toBeGreaterThan(Date.now() + 3_500_000);
    const latest = await rpc(p.delivery.getAttempt.bind(p.delivery), { workspaceId: ws, attemptId: byEvent.get(fail)!.latestAttemptId });
    expect(latest.attempt).toMatchObject({ eventId: fail, attemptNumber: 4 });
    // The most recently attempted first: the failing one's last retry came after the others.
    expect(all.deliveries[0]!.eventId).toBe(fail);

    // One per page: every delivery once, although the failing one has four attempts in the log.
    const paged: string[] = [];
    let pageToken = '';
    do {
      const r = await list({ pageSize: 1, pageToken });
      paged.push(...r.deliveries.map((d) => d.eventId));
      pageToken = r.nextPageToken;
    } while (pageToken && paged.length < 10);
    expect(paged).toEqual(all.deliveries.map((d) => d.eventId));

    expect((await list({ state: ENDED })).deliveries.map((d) => d.eventId)).toEqual([fail]);
    expect((await list({ state: PENDING })).deliveries.map((d) => d.eventId)).toEqual([wait]);
    expect((await list({ state: DONE })).deliveries.map((d) => d.eventId).sort()).toEqual([ok1, ok2].sort());
    expect((await list({ eventId: ok2 })).deliveries.map((d) => [d.eventId, d.state])).toEqual([[ok2, DONE]]);
    // Another workspace sees nothing; bad input names its field.
    expect((await list({ workspaceId: `${ws}x` })).deliveries).toEqual([]);
    await expect(list({ pageToken: 'nope' })).rejects.toMatchObject({ code: 3, details: expect.stringContaining('page_token') });
    await expect(list({ state: 42 as deliveryV1.DeliveryState })).rejects.toMatchObject({ code: 3, details: expect.stringContaining('state') });
    await expect(list({ pageSize: 501 })).rejects.toMatchObject({ code: 3, details: expect.stringContaining('page_size') });
  });

  it('retries are not held up either: beside a hanging endpoint with a backlog, a flaky endpoint gets its retries on schedule', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/stuck', { status: 200, delayMs: 60_000 });
    const seen = new Set<string>();
    // Each event fails once at /flaky2, then succeeds: its success is a retry from a tier.
    p.receiver.behaviour.set('/flaky2', (req) => {
      const id = String(req.headers['x-webhook-id']);
      if (seen.has(id)) return { status: 200, body: 'ok' };
      seen.add(id);
      return { status: 503 };
    });
    const stuck = await createEndpoint(p, ws, p.receiver.url('/stuck'));
    await createEndpoint(p, ws, p.receiver.url('/flaky2'));
    // Fewer first-attempt failures in a row than BREAKER_FAILURES (20): this is about queues, not the breaker.
    const N = 12;
    const ids: string[] = [];
    for (let i = 0; i < N; i++) ids.push(await publish(p, ws, { order_id: `o-rt${i}` }));
    const ok = await eventually(() => {
      const byId = new Map<string, number[]>();
      for (const r of p.receiver.on('/flaky2')) byId.set(String(r.headers['x-webhook-id']), [...(byId.get(String(r.headers['x-webhook-id'])) ?? []), r.receivedAt]);
      return ids.every((id) => (byId.get(id)?.length ?? 0) >= 2) ? byId : undefined;
    }, 30_000, 'every flaky delivery to succeed on its retry');
    // The retry comes 200 ms after the failure (the schedule), not after the hanging endpoint's
    // 10 s timeouts: at most a few seconds on this shared machine.
    for (const id of ids) {
      const [first, second] = ok.get(id)!;
      expect(second! - first!).toBeGreaterThanOrEqual(200);
      expect(second! - first!).toBeLessThan(5_000);
    }
    expect(p.receiver.on('/stuck').length).toBeLessThanOrEqual(PER_ENDPOINT);
    await rpc(p.registry.deleteEndpoint.bind(p.registry), { workspaceId: ws, endpointId: stuck.id });
  });

  it('a hanging endpoint and a failing one do not delay a healthy one on the same partition; the per-endpoint limit holds', async () => {
    const ws = workspace(); // events are keyed by workspace: one partition
    p.receiver.behaviour.set('/hang', { status: 200, delayMs: 60_000 });
    p.receiver.behaviour.set('/broken', { status: 500 });
    const hang = await createEndpoint(p, ws, p.receiver.url('/hang'));
    await createEndpoint(p, ws, p.receiver.url('/broken'));
    await createEndpoint(p, ws, p.receiver.url('/healthy'));
    const N = 20;
    const ids: string[] = [];
    for (let i = 0; i < N; i++) ids.push(await publish(p, ws, { order_id: `o-h${i}` }));

    const healthy = await eventually(() => (new Set(p.receiver.on('/healthy').map((r) => r.headers['x-webhook-id'])).size === N ? p.receiver.on('/healthy') : undefined), 30_000, 'every healthy delivery');
    expect(new Set(healthy.map((r) => r.headers['x-webhook-id']))).toEqual(new Set(ids));
    // ...while the hanging endpoint still holds its first attempts open: none has been recorded,
    // and no more than the per-endpoint limit ever reached it.
    const hangAttempts = (await listAttempts(p, ws, hang.id)).attempts;
    expect(hangAttempts).toHaveLength(0);
    const hanging = p.receiver.on('/hang');
    expect(hanging.length).toBeGreaterThanOrEqual(1);
    expect(hanging.length).toBeLessThanOrEqual(PER_ENDPOINT);
    expect(p.dispatcher.engine!.load.held).toBeGreaterThan(0);
    // Stop the background retries of the hanging endpoint for the tests that follow.
    await rpc(p.registry.deleteEndpoint.bind(p.registry), { workspaceId: ws, endpointId: hang.id });
  });
});

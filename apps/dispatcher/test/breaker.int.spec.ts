// The circuit breaker against the real broker and database: an endpoint that fails every attempt
// gets probes, not a retry storm; its waiting deliveries are parked in memory; once it answers
// again every delivery goes through, once.
import { eventually, uniquePrefix } from '@hookline/testing';
import { createEndpoint, outcomeOf, publish, startPlatform, type Platform } from './harness';

jest.setTimeout(60_000);

describe('circuit breaker per endpoint', () => {
  const prefix = uniquePrefix('brk');
  let p: Platform;

  beforeAll(async () => {
    p = await startPlatform(prefix, {
      TARGET_ALLOWLIST: '127.0.0.1/32',
      // Without the breaker, 30 deliveries retried every 200 ms would make ~750 requests in 5 s.
      RETRY_SCHEDULE: Array.from({ length: 40 }, () => '200ms').join(','),
      RETRY_JITTER_PERCENT: '0',
      BREAKER_FAILURES: '3',
      BREAKER_PROBE_MS: '1000',
    });
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('after 3 failures in a row an endpoint gets one probe a second; when it answers, every delivery arrives once', async () => {
    const ws = `ws_${prefix}`;
    let up = false;
    p.receiver.behaviour.set('/down', () => (up ? { status: 200, body: 'ok' } : { status: 503 }));
    const ep = await createEndpoint(p, ws, p.receiver.url('/down'));
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await publish(p, ws, { order_id: `o-brk${i}` }));
    await eventually(() => (p.receiver.on('/down').length >= 3 ? true : undefined), 15_000, 'the first failures');
    const openedAt = Date.now();
    await new Promise((r) => setTimeout(r, 5_000));
    const duringOutage = p.receiver.on('/down').length;
    // 3 to open it, then about one probe per second (per replica; this platform has one).
    expect(duringOutage).toBeLessThanOrEqual(3 + Math.ceil((Date.now() - openedAt) / 1000) + 3);
    expect(p.dispatcher.engine!.breakers.open).toBe(1);
    // Their retries wait parked in memory (read from their tier once), not cycling through a tier.
    await eventually(() => (p.dispatcher.engine!.load.parked >= 25 ? true : undefined), 10_000, 'the waiting deliveries to be parked');

    up = true;
    const upAt = Date.now();
    await eventually(async () => {
      for (const id of ids) if ((await outcomeOf(p, `${id}|${ep.id}`))?.state !== 'succeeded') return undefined;
      return true;
    }, 30_000, 'every delivery to succeed after the endpoint recovered');
    // Once each: one 2xx answer per event.
    const answered = p.receiver.on('/down').filter((r) => r.receivedAt >= upAt).map((r) => String(r.headers['x-webhook-id']));
    expect(answered.sort()).toEqual([...ids].sort());
    expect(p.dispatcher.engine!.breakers.open).toBe(0);
    expect(p.dispatcher.engine!.load.parked).toBe(0);
    // Postponed tasks kept their attempt count: nothing was exhausted by the outage.
    expect(await p.models.failed.countDocuments({ endpointId: ep.id })).toBe(0);
  });
});

// The circuit breaker against the real broker and database: an endpoint that fails every attempt
// gets probes, not a retry storm; its waiting deliveries are parked in memory; once it answers
// again every delivery goes through, once, whether its park is fed at once, was handed back to
// the tiers by a graceful stop and taken by the next replica, moved to another replica with its
// tier partition, or went back to a tier after PARK_MAX_SECONDS and was parked again.
import { Writable } from 'node:stream';
import { createLogger } from '@hookline/service-kit';
import { eventually, uniquePrefix } from '@hookline/testing';
import { createApp as createDispatcher } from '../src/app';
import { loadConfig } from '../src/config';
import { attemptFromStored } from '../src/store/models';
import { createEndpoint, outcomeOf, publish, startPlatform, type Platform } from './harness';

jest.setTimeout(60_000);

const BREAKER_ENV = {
  TARGET_ALLOWLIST: '127.0.0.1/32',
  // Without the breaker, 30 deliveries retried every 200 ms would make ~750 requests in 5 s.
  RETRY_SCHEDULE: Array.from({ length: 40 }, () => '200ms').join(','),
  RETRY_JITTER_PERCENT: '0',
  BREAKER_FAILURES: '3',
  BREAKER_PROBE_MS: '1000',
};

/** An endpoint answering 503 (`down`) until `recover()`, then 200, with `count` events published for it. */
async function downEndpoint(p: Platform, path: string, count: number, down: { status: number; headers?: Record<string, string> } = { status: 503 }, ws = `ws_${p.prefix}`) {
  let up = false;
  p.receiver.behaviour.set(path, () => (up ? { status: 200, body: 'ok' } : down));
  const ep = await createEndpoint(p, ws, p.receiver.url(path));
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await publish(p, ws, { order_id: `o-${path.slice(1)}${i}` }));
  let upAt = 0;
  return {
    ep,
    ids,
    recover: () => ((up = true), (upAt = Date.now())),
    /** Waits until every delivery succeeded, then checks each was answered 2xx exactly once after recovery. */
    async deliveredOnce(within: number) {
      await eventually(async () => {
        for (const id of ids) if ((await outcomeOf(p, `${id}|${ep.id}`))?.state !== 'succeeded') return undefined;
        return true;
      }, within, 'every delivery to succeed after the endpoint recovered');
      const answered = p.receiver.on(path).filter((r) => r.receivedAt >= upAt).map((r) => String(r.headers['x-webhook-id']));
      expect(answered.sort()).toEqual([...ids].sort());
      // Parked and postponed tasks kept their attempt count: nothing was exhausted by the outage.
      expect(await p.models.failed.countDocuments({ endpointId: ep.id })).toBe(0);
    },
  };
}

describe('circuit breaker per endpoint', () => {
  const prefix = uniquePrefix('brk');
  let p: Platform;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    p = await startPlatform(prefix, BREAKER_ENV);
  });

  afterAll(async () => {
    for (const stop of stops) await stop().catch(() => undefined);
    await p?.stop();
  });

  it('after 3 failures in a row an endpoint gets one probe a second; when it answers, every delivery arrives once', async () => {
    const down = await downEndpoint(p, '/down', 30);
    await eventually(() => (p.dispatcher.engine!.breakers.open === 1 ? true : undefined), 15_000, 'the circuit to open');
    // Counted from just after it opened: first attempts already under way then (several at once
    // when intake takes a few events together, as on a loaded CI box) still arrive.
    await new Promise((r) => setTimeout(r, 500));
    const openedAt = Date.now();
    const atOpen = p.receiver.on('/down').length;
    await new Promise((r) => setTimeout(r, 5_000));
    const probes = p.receiver.on('/down').length - atOpen;
    // About one probe per second (per replica; this platform has one), taken from the park.
    expect(probes).toBeLessThanOrEqual(Math.ceil((Date.now() - openedAt) / 1000) + 1);
    expect(probes).toBeGreaterThanOrEqual(2);
    expect(p.dispatcher.engine!.breakers.open).toBe(1);
    // Their retries wait parked in memory (read from their tier once), not cycling through a tier.
    await eventually(() => (p.dispatcher.engine!.load.parked >= 25 ? true : undefined), 10_000, 'the waiting deliveries to be parked');

    down.recover();
    await down.deliveredOnce(30_000);
    expect(p.dispatcher.engine!.breakers.open).toBe(0);
    expect(p.dispatcher.engine!.load.parked).toBe(0);
  });

  it('a graceful stop hands parked deliveries back to the tiers, and the next replica delivers each once', async () => {
    const down = await downEndpoint(p, '/park', 20);
    await eventually(() => (p.dispatcher.engine!.load.parked >= 15 ? true : undefined), 20_000, 'the waiting deliveries to be parked');
    // SIGTERM's path: the park goes back to the tiers (offsets committed after), nothing is lost.
    await p.dispatcher.stop();
    expect(p.dispatcher.engine!.load.parked).toBe(0);
    down.recover();
    const next = createDispatcher(loadConfig(p.env), createLogger('test', 'silent'), { ca: [p.pki.ca] });
    stops.push(() => next.stop());
    await next.start();
    await down.deliveredOnce(40_000);
  });
});

describe('parked deliveries whose tier partition moves to another replica', () => {
  const prefix = uniquePrefix('pkm');
  let p: Platform;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    p = await startPlatform(prefix, BREAKER_ENV);
  });

  afterAll(async () => {
    for (const stop of stops) await stop().catch(() => undefined);
    await p?.stop();
  });

  it('are dropped by the old owner and delivered once by the new one', async () => {
    const down = await downEndpoint(p, '/moved', 20);
    const first = p.dispatcher.engine!;
    await eventually(() => (first.load.parked >= 15 ? true : undefined), 20_000, 'the waiting deliveries to be parked');
    // A second replica joins: the rebalance gives it part of the tier's partitions (2 per tier
    // here; the deliveries are keyed over both). It reads their records again, from the last
    // commit, and parks them in its turn; the first replica must let go of its copies, or both
    // would deliver them when the endpoint answers.
    const next = createDispatcher(loadConfig(p.env), createLogger('test', 'silent'), { ca: [p.pki.ca] });
    stops.push(() => next.stop());
    await next.start();
    await eventually(() => (next.engine!.load.parked > 0 ? true : undefined), 30_000, 'the new replica to park the deliveries of the partitions it took');
    expect(first.load.parked).toBeLessThan(20);
    down.recover();
    await down.deliveredOnce(40_000);
  });
});

describe('tier tasks of partitions this replica no longer owns', () => {
  const prefix = uniquePrefix('pkn');
  let p: Platform;

  beforeAll(async () => {
    p = await startPlatform(prefix, BREAKER_ENV);
  });

  afterAll(async () => {
    await p?.stop();
  });

  // A race that can send a delivery twice (the likely cause of one duplicate the test above met
  // in CI, session 11): a task of a tier partition that moves while the task is on its way to the
  // park (queued, or in an intake) was parked by the old owner after the rebalance, while the new
  // owner read its record again and parked it too; both sent it when the endpoint answered. Here the engine is told directly that it owns no tier
  // partition any more (what a rebalance that took them all would say), and new tier tasks of a
  // down endpoint keep coming: none may be parked. (Their records are settled for their new
  // owner to read again; in this test nobody else owns them, so they are not delivered.)
  it('are not parked: their new owner parks them', async () => {
    const down = await downEndpoint(p, '/unowned', 10);
    const engine = p.dispatcher.engine!;
    await eventually(() => (engine.load.parked >= 8 ? true : undefined), 20_000, 'the waiting deliveries to be parked');
    engine.retainParked({});
    expect(engine.load.parked).toBe(0);
    const before = p.receiver.on('/unowned').length;
    // More deliveries for the down endpoint: probes fail, and their retries come back from the tiers.
    for (let i = 0; i < 5; i++) await publish(p, `ws_${p.prefix}`, { order_id: `o-unowned-more${i}` });
    await eventually(() => (p.receiver.on('/unowned').length >= before + 2 ? true : undefined), 15_000, 'probes of the new deliveries');
    // Without the guard in park(), the deliveries the open circuit sent to a tier come back and
    // are parked here about 3 s after their probes (seen: 5 parked). With it, none in 10 s.
    for (const until = Date.now() + 10_000; Date.now() < until; ) {
      expect(engine.load.parked).toBe(0);
      await new Promise((r) => setTimeout(r, 250));
    }
    down.recover();
  });
});

describe('deliveries parked longer than PARK_MAX_SECONDS', () => {
  const prefix = uniquePrefix('pkx');
  let p: Platform;
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });

  beforeAll(async () => {
    p = await startPlatform(prefix, { ...BREAKER_ENV, PARK_MAX_SECONDS: '2' }, undefined, (service) => createLogger(service, service === 'dispatcher' ? 'info' : 'silent', sink));
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('go back to a tier, are parked again, and are delivered once each when the endpoint answers', async () => {
    const down = await downEndpoint(p, '/expire', 20);
    // Deliveries sent back to a tier, over every "parked longer" line: more than the 20 there are
    // means some were parked a second time after a round trip through a tier (5-15 s).
    const backToTier = () =>
      lines
        .filter((l) => l.includes('parked longer than the park allows'))
        .reduce((n, l) => n + ((JSON.parse(l) as { deliveries?: number }).deliveries ?? 0), 0);
    await eventually(() => (backToTier() > 25 ? true : undefined), 60_000, 'parked deliveries to go back to a tier, be parked again and go back again');
    down.recover();
    await down.deliveredOnce(40_000);
  }, 120_000);
});

describe('a failed probe\'s retry, waiting for its backoff when the endpoint answers again', () => {
  const prefix = uniquePrefix('prb');
  let p: Platform;

  beforeAll(async () => {
    // Retries after the first wait 20 s: a probe that fails waits that long on its tier.
    p = await startPlatform(prefix, { ...BREAKER_ENV, RETRY_SCHEDULE: '1s,20s,20s,20s' });
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('is attempted as soon as the endpoint answers, and its tier record, when due, sends nothing more', async () => {
    const down = await downEndpoint(p, '/probed', 6);
    // Beside it, in another workspace, an endpoint that asks for 20 s with Retry-After: it gets them.
    const asked = await downEndpoint(p, '/asked', 4, { status: 503, headers: { 'retry-after': '20' } }, `ws_${p.prefix}_asked`);
    // And one that, once it answers again, refuses each early copy once with Retry-After: 25.
    const flapWs = `ws_${p.prefix}_flap`;
    const requests = new Map<string, number>();
    let beforeUp: Map<string, number> | undefined;
    p.receiver.behaviour.set('/flap', (req) => {
      const id = String(req.headers['x-webhook-id']);
      const n = (requests.get(id) ?? 0) + 1;
      requests.set(id, n);
      if (!beforeUp) return { status: 503 };
      const probed = (beforeUp.get(id) ?? 0) >= 2;
      return probed && n === beforeUp.get(id)! + 1 ? { status: 503, headers: { 'retry-after': '25' } } : { status: 200, body: 'ok' };
    });
    const flap = await createEndpoint(p, flapWs, p.receiver.url('/flap'));
    const flapIds: string[] = [];
    for (let i = 0; i < 6; i++) flapIds.push(await publish(p, flapWs, { order_id: `o-flap${i}` }));
    const engine = p.dispatcher.engine!;
    // Two probes failed with the circuit open: their retries wait 20 s on their tier.
    await eventually(async () => ((await p.models.attempts.countDocuments({ endpointId: down.ep.id, outcome: 'failed', attemptNumber: { $gte: 2 } })) >= 2 ? true : undefined), 20_000, 'two failed probes');
    expect(engine.load.earlyRetries).toBeGreaterThanOrEqual(2);
    await eventually(async () => ((await p.models.attempts.countDocuments({ endpointId: asked.ep.id, outcome: 'failed' })) >= 3 ? true : undefined), 20_000, 'the other endpoint to fail');
    await eventually(async () => ((await p.models.attempts.countDocuments({ endpointId: flap.id, outcome: 'failed', attemptNumber: { $gte: 2 } })) >= 2 ? true : undefined), 20_000, 'two failed probes of the flapping endpoint');
    down.recover();
    asked.recover();
    beforeUp = new Map(requests);
    await down.deliveredOnce(30_000);
    const attempts = (await p.models.attempts.find({ endpointId: down.ep.id })).map((a) => attemptFromStored(a.doc));
    const probed = attempts.filter((a) => a.outcome === 'failed' && a.attemptNumber >= 2);
    expect(probed.length).toBeGreaterThanOrEqual(2);
    for (const failed of probed) {
      // Delivered by the early copy, before the retry it scheduled was due.
      const success = attempts.find((a) => a.deliveryId === failed.deliveryId && a.outcome === 'succeeded');
      expect(success?.attemptNumber).toBe(failed.attemptNumber + 1);
      expect(success!.createdAt.getTime()).toBeLessThan(failed.nextAttemptAt!.getTime());
    }
    expect(engine.load.earlyRetries).toBe(0);
    // The tier records those retries wait in come due, find their delivery done, and send nothing.
    const lastDue = Math.max(...probed.map((a) => a.nextAttemptAt!.getTime()));
    await new Promise((r) => setTimeout(r, Math.max(lastDue - Date.now(), 0) + 4_000));
    await down.deliveredOnce(1_000);
    expect(await p.models.attempts.countDocuments({ endpointId: down.ep.id, outcome: 'succeeded' })).toBe(down.ids.length);

    // Retry-After is a floor, recovery or not: no delivery to that endpoint came before the time it asked for.
    await asked.deliveredOnce(30_000);
    const told = (await p.models.attempts.find({ endpointId: asked.ep.id })).map((a) => attemptFromStored(a.doc));
    const refused = told.filter((a) => a.outcome === 'failed');
    expect(refused.length).toBeGreaterThanOrEqual(3);
    for (const failed of refused) {
      const next = told.find((a) => a.deliveryId === failed.deliveryId && a.attemptNumber === failed.attemptNumber + 1);
      expect(next!.createdAt.getTime()).toBeGreaterThanOrEqual(failed.nextAttemptAt!.getTime());
    }

    // A copy that fails carries the delivery on with its own retry, at the Retry-After it was
    // given; the tier record it was copied from, due before that, sends nothing.
    await eventually(async () => {
      for (const id of flapIds) if ((await outcomeOf(p, `${id}|${flap.id}`))?.state !== 'succeeded') return undefined;
      return true;
    }, 40_000, 'every delivery to the flapping endpoint to succeed');
    const flapped = (await p.models.attempts.find({ endpointId: flap.id })).map((a) => attemptFromStored(a.doc));
    const copied = flapIds.filter((id) => (beforeUp!.get(id) ?? 0) >= 2);
    expect(copied.length).toBeGreaterThanOrEqual(2);
    for (const id of copied) {
      const mine = flapped.filter((a) => a.eventId === id).sort((a, b) => a.attemptNumber - b.attemptNumber);
      const made = beforeUp!.get(id)!;
      expect(mine.map((a) => a.outcome)).toEqual([...Array<string>(made + 1).fill('failed'), 'succeeded']);
      expect(mine[made + 1]!.createdAt.getTime()).toBeGreaterThanOrEqual(mine[made]!.nextAttemptAt!.getTime());
      expect(requests.get(id)).toBe(made + 2);
    }
  }, 120_000);
});

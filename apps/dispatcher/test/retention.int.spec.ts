// Retention against the real database server: FerretDB refuses TTL indexes, so `auto` falls back
// to the sweeper, which removes every dispatcher document past its expiry, slice by slice, and
// nothing younger. With RETENTION_SECONDS short, a delivered event's documents disappear.
import { createLogger } from '@hookline/service-kit';
import mongoose from 'mongoose';
import { eventually, infraFromEnv, uniquePrefix } from '@hookline/testing';
import { dispatcherModels } from '../src/store/models';
import { Retention } from '../src/store/retention';
import { createEndpoint, publish, startPlatform, type Platform } from './harness';

jest.setTimeout(60_000);

describe('retention of dispatcher documents', () => {
  const prefix = uniquePrefix('ret');
  let p: Platform;

  beforeAll(async () => {
    p = await startPlatform(prefix, { TARGET_ALLOWLIST: '127.0.0.1/32', RETENTION_SECONDS: '10', RETENTION_SWEEP_INTERVAL_SECONDS: '1' });
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('auto mode on FerretDB uses the sweeper for every collection (no TTL index there)', () => {
    expect(Object.fromEntries(p.dispatcher.retention!.how)).toEqual({ events: 'sweeper', attempts: 'sweeper', delivered: 'sweeper', failed: 'sweeper' });
  });

  it('the sweeper deletes expired documents slice by slice and keeps the rest', async () => {
    // A database of its own: the platform's dispatcher sweeps its own every second.
    const db = mongoose.createConnection(infraFromEnv().mongoUri, { dbName: `${prefix}_sweep` });
    await db.asPromise();
    const models = dispatcherModels(db);
    const now = Date.now();
    const HOUR = 3_600_000;
    // Expired over the last 5 hours (one per minute), and 50 not yet expired.
    const docs = (n: number, from: number, step: number, tag: string) =>
      Array.from({ length: n }, (_, i) => ({ _id: `evt_${tag}_${i}`, workspaceId: `ws_${prefix}`, eventType: 'x', payload: Buffer.from('{}'), createdAt: new Date(from), expiresAt: new Date(from + i * step) }));
    await models.events.insertMany([...docs(300, now - 5 * HOUR, 60_000, `${prefix}old`), ...docs(50, now + HOUR, 1_000, `${prefix}new`)]);
    let clock = now;
    const retention = new Retention({ events: models.events } as never, { mode: 'sweeper', intervalMs: HOUR, now: () => clock }, createLogger('test', 'silent'));
    await retention.prepare();
    expect(retention.how.get('events')).toBe('sweeper');
    const mine = { _id: { $regex: `^evt_${prefix}` } };
    // Each step takes one slice (an interval of expiry times) of what has expired, oldest first.
    const first = await retention.sweep();
    expect(first).toBeGreaterThanOrEqual(60);
    expect(first).toBeLessThan(300);
    let steps = 1;
    while ((await models.events.countDocuments({ ...mine, expiresAt: { $lt: new Date(now) } })) > 0 && steps < 10) {
      await retention.sweep();
      steps++;
    }
    expect(steps).toBeGreaterThanOrEqual(5);
    expect(await models.events.countDocuments({ ...mine, expiresAt: { $lt: new Date(now) } })).toBe(0);
    expect(await models.events.countDocuments(mine)).toBe(50);
    // Later, the rest expires too (the first slice after the gap is the hour with nothing in it).
    clock = now + 2 * HOUR;
    await retention.sweep();
    await retention.sweep();
    expect(await models.events.countDocuments(mine)).toBe(0);
    await retention.stop();
    await db.close();
  });

  it('with RETENTION_SECONDS=10 a delivered event leaves no document behind after its expiry', async () => {
    const ws = `ws_${prefix}_live`;
    const ep = await createEndpoint(p, ws, p.receiver.url('/kept'));
    const eventId = await publish(p, ws, { order_id: 'o-ret' });
    const id = `${eventId}|${ep.id}`;
    await eventually(() => p.models.delivered.findById(id).lean().then((d) => d ?? undefined), 15_000, 'the delivery');
    expect(await p.models.events.countDocuments({ _id: eventId })).toBe(1);
    expect(await p.models.attempts.countDocuments({ deliveryId: id })).toBe(1);
    await eventually(
      async () => {
        const left = (await p.models.events.countDocuments({ _id: eventId })) + (await p.models.attempts.countDocuments({ deliveryId: id })) + (await p.models.delivered.countDocuments({ _id: id }));
        return left === 0 ? true : undefined;
      },
      30_000,
      'the expired documents to be swept',
    );
  });
});

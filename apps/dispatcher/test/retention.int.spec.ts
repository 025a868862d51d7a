// Retention against the real database server: documents live in time buckets by event creation
// time, and a bucket is dropped whole once every event it can hold is past retention (no delete
// scans, no TTL index). With RETENTION_SECONDS short, a delivered event's documents disappear.
import { createLogger } from '@hookline/service-kit';
import mongoose from 'mongoose';
import { eventually, infraFromEnv, uniquePrefix } from '@hookline/testing';
import { dispatcherModels } from '../src/store/models';
import { Retention } from '../src/store/retention';
import { insertIntoBuckets } from '../src/store/insert';
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

  it('documents go to the bucket of their event\'s time, and a bucket is dropped whole once its events are past retention', async () => {
    // A database of its own: the platform's dispatcher drops its own buckets every second.
    const db = mongoose.createConnection(infraFromEnv().mongoUri, { dbName: `${prefix}_drop` });
    await db.asPromise();
    const HOUR = 3_600_000;
    const now = Date.now();
    let clock = now;
    const models = dispatcherModels(db, 8 * HOUR, () => clock); // buckets of an hour
    expect(models.events.sizeMs).toBe(HOUR);
    const docs = (n: number, createdAt: number, tag: string) =>
      Array.from({ length: n }, (_, i) => ({ _id: `evt_${tag}_${i}`, workspaceId: `ws_${prefix}`, eventType: 'x', payload: Buffer.from('{}'), createdAt: new Date(createdAt), expiresAt: new Date(createdAt + 8 * HOUR) }));
    const old = docs(300, now - 20 * HOUR, 'old');
    const recent = docs(40, now - 3 * HOUR, 'recent');
    const fresh = docs(10, now, 'fresh');
    // Each written while its bucket was current.
    for (const [docsOf, at] of [[old, now - 20 * HOUR], [recent, now - 3 * HOUR], [fresh, now]] as const) {
      clock = at;
      expect((await insertIntoBuckets(models.events, [...docsOf], (d) => d.createdAt)).size).toBe(docsOf.length);
    }
    // The same documents again (a record read twice): nothing new, whichever bucket they are in.
    expect((await insertIntoBuckets(models.events, [recent[0]!, fresh[0]!], (d) => d.createdAt)).size).toBe(0);
    // A bucket past retention is not written to (it would come back without its indexes once dropped).
    expect((await insertIntoBuckets(models.events, [{ ...old[0]!, _id: 'evt_late' }], (d) => d.createdAt)).size).toBe(1);
    expect(await models.events.findOne({ _id: 'evt_late' })).toBeNull();
    const names = (await models.events.all()).map((b) => b.name);
    expect(names).toHaveLength(3);
    for (const name of names) expect(name).toMatch(/^events_b\d+_3600000$/);
    expect(await models.events.countDocuments({})).toBe(350);
    expect(await models.events.findOne({ _id: 'evt_recent_7' })).toMatchObject({ workspaceId: `ws_${prefix}` });

    const retention = new Retention([models.events] as never, { intervalMs: HOUR, now: () => clock }, createLogger('test', 'silent'));
    retention.setActive(true);
    expect(await retention.sweep()).toEqual([names[2]]);
    expect(await models.events.countDocuments({})).toBe(50);
    expect(await retention.sweep()).toEqual([]);
    // Eleven hours on, the rest has expired too (retention, plus the bucket, plus the drop margin).
    clock = now + 11 * HOUR;
    expect((await retention.sweep()).sort()).toEqual([names[0], names[1]].sort());
    expect(await models.events.countDocuments({})).toBe(0);
    expect(await models.events.all()).toEqual([]);
    await retention.stop();
    await db.dropDatabase();
    await db.close();
  });

  it('with RETENTION_SECONDS=10 a delivered event leaves no document behind after its expiry', async () => {
    const ws = `ws_${prefix}_live`;
    const ep = await createEndpoint(p, ws, p.receiver.url('/kept'));
    const eventId = await publish(p, ws, { order_id: 'o-ret' });
    const id = `${eventId}|${ep.id}`;
    await eventually(() => p.models.delivered.findOne({ _id: id }).then((d) => d ?? undefined), 15_000, 'the delivery');
    expect(await p.models.events.countDocuments({ _id: eventId })).toBe(1);
    expect(await p.models.attempts.countDocuments({ deliveryId: id })).toBe(1);
    await eventually(
      async () => {
        const left = (await p.models.events.countDocuments({ _id: eventId })) + (await p.models.attempts.countDocuments({ deliveryId: id })) + (await p.models.delivered.countDocuments({ _id: id }));
        return left === 0 ? true : undefined;
      },
      30_000,
      'the expired buckets to be dropped',
    );
  });
});

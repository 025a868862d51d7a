import type { AttemptDoc, DeliveredDoc, DispatcherModels, FailedDoc } from './models';
import { OutcomeWriter, type OutcomeRecord } from './outcome-writer';

const DUPLICATE = 11000;

/** Collections that record calls; `taken` ids answer as duplicates (another chain's attempt). */
function fakeModels(opts: { fail?: boolean; taken?: Set<string>; stored?: Set<string> } = {}) {
  const calls: { op: string; args: unknown[] }[] = [];
  const op =
    (name: string) =>
    async (...args: unknown[]) => {
      calls.push({ op: name, args });
      if (opts.fail) throw new Error('database down');
      if (name === 'attempts.insertMany') {
        const docs = args[0] as AttemptDoc[];
        const writeErrors = docs.flatMap((d, index) => (opts.taken?.has(d._id) || opts.stored?.has(d._id) ? [{ code: DUPLICATE, index }] : []));
        if (writeErrors.length > 0) throw Object.assign(new Error('E11000 duplicate key'), { writeErrors });
      }
      return { modifiedCount: 1 };
    };
  // One bucket each (every outcome here is of events created at the same time).
  const bucket = {
    attempts: { insertMany: op('attempts.insertMany'), exists: async (f: { _id: string }) => (opts.stored?.has(f._id) ? { _id: f._id } : null) },
    delivered: { insertMany: op('delivered.insertMany') },
    failed: { insertMany: op('failed.insertMany') },
  };
  const models = {
    attempts: { forWrite: async () => bucket.attempts, of: () => bucket.attempts },
    delivered: { forWrite: async () => bucket.delivered },
    failed: { forWrite: async () => bucket.failed },
    health: { updateOne: op('health.updateOne') },
  } as unknown as DispatcherModels;
  return { models, calls, bucket };
}

const eventCreatedAt = new Date(1_000);
const attempt = (id: string) => ({ _id: id, eventCreatedAt }) as AttemptDoc;
const success = (n: number, endpoint = 'ep_a'): OutcomeRecord => ({
  attempt: attempt(`att_${n}`),
  delivered: { _id: `evt_${n}|${endpoint}`, eventCreatedAt } as DeliveredDoc,
  healthyEndpoint: { id: `ws|${endpoint}`, workspaceId: 'ws', endpointId: endpoint },
});

describe('OutcomeWriter', () => {
  it('writes outcomes that complete together as one group of inserts, and health once per endpoint', async () => {
    const { models, calls } = fakeModels();
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    const retry: OutcomeRecord = { attempt: attempt('att_9') };
    const failed: OutcomeRecord = { attempt: attempt('att_10'), failed: { _id: 'evt_10|ep_b|4', eventCreatedAt } as FailedDoc };
    const results = await Promise.all([writer.record(success(1)), writer.record(success(2)), writer.record(success(3, 'ep_c')), writer.record(retry), writer.record(failed)]);

    expect(results.every((r) => r.attemptNew)).toBe(true);
    expect(calls.map((c) => c.op).sort()).toEqual(['attempts.insertMany', 'delivered.insertMany', 'failed.insertMany', 'health.updateOne', 'health.updateOne']);
    const inserted = calls.find((c) => c.op === 'attempts.insertMany')!.args[0] as AttemptDoc[];
    expect(inserted.map((a) => a._id)).toEqual(['att_1', 'att_2', 'att_3', 'att_9', 'att_10']);
    // In their stored shape (models.ts, storedAttempt): the queried fields and one `detail` string.
    expect(inserted.every((a) => typeof (a as { detail?: unknown }).detail === 'string')).toBe(true);
    expect((calls.find((c) => c.op === 'delivered.insertMany')!.args[0] as DeliveredDoc[]).map((d) => d._id)).toEqual(['evt_1|ep_a', 'evt_2|ep_a', 'evt_3|ep_c']);
    // No update of any delivery: the database only receives inserts (and one small health document per endpoint).
    expect(calls.some((c) => /update/.test(c.op) && !c.op.startsWith('health'))).toBe(false);
  });

  it('says which attempts another chain of the same delivery recorded first (same number, another _id)', async () => {
    const { models } = fakeModels({ taken: new Set(['att_2']) });
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    const [a, b] = await Promise.all([writer.record({ attempt: attempt('att_1') }), writer.record({ attempt: attempt('att_2') })]);
    expect(a.attemptNew).toBe(true);
    expect(b.attemptNew).toBe(false);
  });

  it('answers "not new" for its own earlier insert too (same _id, written before a transient error), without a lookup', async () => {
    const { models, calls } = fakeModels({ stored: new Set(['att_1']) });
    let looked = 0;
    (models.attempts as unknown as { of: () => unknown }).of = () => {
      looked++;
      return {};
    };
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    // record() then reads the attempt recorded first before it schedules anything (pipeline.spec).
    expect((await writer.record({ attempt: attempt('att_1') })).attemptNew).toBe(false);
    expect(looked).toBe(0);
    expect(calls.filter((c) => c.op === 'attempts.insertMany')).toHaveLength(1);
  });

  it('starts another group beyond the size limit', async () => {
    const { models, calls } = fakeModels();
    const writer = new OutcomeWriter(models, () => 1_000, 5, 2);
    await Promise.all([1, 2, 3].map((n) => writer.record(success(n))));
    expect(calls.filter((c) => c.op === 'attempts.insertMany')).toHaveLength(2);
  });

  it('retries a group after a transient SQLITE_BUSY answer', async () => {
    const { models, calls, bucket } = fakeModels();
    let busy = 1;
    const insertMany = bucket.attempts.insertMany;
    bucket.attempts.insertMany = async (...args: unknown[]) => {
      if (busy-- > 0) throw Object.assign(new Error('database is locked (5) (SQLITE_BUSY)'), { code: 1 });
      return insertMany(...args);
    };
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    await writer.record(success(1));
    expect(calls.filter((c) => c.op === 'attempts.insertMany')).toHaveLength(1);
  });

  it('rejects every outcome of a group whose write failed, so callers do not take it as recorded', async () => {
    const { models } = fakeModels({ fail: true });
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    const results = await Promise.allSettled([writer.record(success(1)), writer.record(success(2))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

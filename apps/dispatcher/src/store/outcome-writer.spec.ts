import type { AttemptDoc, DispatcherModels } from './models';
import { OutcomeWriter, type DeliveryOutcome } from './outcome-writer';

function fakeModels(fail = false) {
  const calls: { op: string; args: unknown[] }[] = [];
  const op = (name: string) => async (...args: unknown[]) => {
    calls.push({ op: name, args });
    if (fail) throw new Error('database down');
    return { modifiedCount: 1 };
  };
  const models = {
    attempts: { insertMany: op('attempts.insertMany') },
    deliveries: { updateMany: op('deliveries.updateMany'), updateOne: op('deliveries.updateOne') },
    health: { updateOne: op('health.updateOne') },
  } as unknown as DispatcherModels;
  return { models, calls };
}

const attempt = (id: string) => ({ _id: id }) as AttemptDoc;
const success = (n: number, endpoint = 'ep_a'): DeliveryOutcome => ({
  deliveryId: `evt_${n}|${endpoint}`,
  owner: 'me',
  attempt: attempt(`att_${n}`),
  set: { state: 'succeeded', nextAttemptAt: null, lastError: '', attemptCount: 1 },
  healthyEndpoint: { id: `ws|${endpoint}`, workspaceId: 'ws', endpointId: endpoint },
});

describe('OutcomeWriter', () => {
  it('writes outcomes that complete together as one group', async () => {
    const { models, calls } = fakeModels();
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    const retry: DeliveryOutcome = { deliveryId: 'evt_9|ep_b', owner: 'me', attempt: attempt('att_9'), set: { state: 'pending', nextAttemptAt: new Date(5_000), lastError: 'endpoint answered 500', attemptCount: 1 } };
    await Promise.all([writer.record(success(1)), writer.record(success(2)), writer.record(success(3, 'ep_c')), writer.record(retry)]);

    expect(calls.map((c) => c.op).sort()).toEqual(['attempts.insertMany', 'deliveries.updateMany', 'deliveries.updateOne', 'health.updateOne', 'health.updateOne']);
    const inserted = calls.find((c) => c.op === 'attempts.insertMany')!.args[0] as AttemptDoc[];
    expect(inserted.map((a) => a._id)).toEqual(['att_1', 'att_2', 'att_3', 'att_9']);
    const [filter, update] = calls.find((c) => c.op === 'deliveries.updateMany')!.args as [Record<string, unknown>, Record<string, Record<string, unknown>>];
    // A success is final whoever holds the lease: written over any pending state.
    expect(filter).toEqual({ _id: { $in: ['evt_1|ep_a', 'evt_2|ep_a', 'evt_3|ep_c'] }, state: 'pending' });
    expect(update.$inc).toEqual({ attemptCount: 1 });
    expect(update.$set).toMatchObject({ state: 'succeeded', leaseOwner: '', leaseUntil: new Date(0) });
    const [retryFilter, retryUpdate] = calls.find((c) => c.op === 'deliveries.updateOne')!.args as [Record<string, unknown>, Record<string, Record<string, unknown>>];
    expect(retryFilter).toEqual({ _id: 'evt_9|ep_b', leaseOwner: 'me' });
    expect(retryUpdate.$set).toMatchObject({ state: 'pending', nextAttemptAt: new Date(5_000), attemptCount: 1, leaseOwner: '' });
  });

  it('starts another group beyond the size limit', async () => {
    const { models, calls } = fakeModels();
    const writer = new OutcomeWriter(models, () => 1_000, 5, 2);
    await Promise.all([1, 2, 3].map((n) => writer.record(success(n))));
    expect(calls.filter((c) => c.op === 'attempts.insertMany')).toHaveLength(2);
  });

  it('retries a group after a transient SQLITE_BUSY answer', async () => {
    const { models, calls } = fakeModels();
    let busy = 1;
    const insertMany = (models.attempts as unknown as { insertMany: (...a: unknown[]) => Promise<unknown> }).insertMany;
    (models.attempts as unknown as { insertMany: unknown }).insertMany = async (...args: unknown[]) => {
      if (busy-- > 0) throw Object.assign(new Error('database is locked (5) (SQLITE_BUSY)'), { code: 1 });
      return insertMany(...args);
    };
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    await writer.record(success(1));
    expect(calls.filter((c) => c.op === 'attempts.insertMany')).toHaveLength(1);
  });

  it('runs exclusive writes between group writes, never beside one', async () => {
    const { models } = fakeModels();
    const order: string[] = [];
    const slow = models.deliveries.updateMany.bind(models.deliveries);
    (models.deliveries as unknown as { updateMany: unknown }).updateMany = async (...args: unknown[]) => {
      order.push('group:start');
      await new Promise((r) => setTimeout(r, 30));
      order.push('group:end');
      return (slow as (...a: unknown[]) => Promise<unknown>)(...args);
    };
    const writer = new OutcomeWriter(models, () => 1_000, 1);
    const recorded = writer.record(success(1));
    await new Promise((r) => setTimeout(r, 5));
    await writer.exclusive(async () => void order.push('exclusive'));
    await recorded;
    expect(order).toEqual(['group:start', 'group:end', 'exclusive']);
  });

  it('rejects every outcome of a group whose write failed, so callers do not take it as recorded', async () => {
    const { models } = fakeModels(true);
    const writer = new OutcomeWriter(models, () => 1_000, 5);
    const results = await Promise.allSettled([writer.record(success(1)), writer.record(success(2))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

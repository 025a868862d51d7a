import { WorkQueue, type WorkItem } from './work-queue';

interface Item extends WorkItem {
  n: number;
}

/** A run function whose calls stay open until the test finishes them. */
function gate() {
  const open = new Map<number, () => void>();
  const started: Item[] = [];
  const run = (item: Item) =>
    new Promise<void>((resolve) => {
      started.push(item);
      open.set(item.n, resolve);
    });
  const finish = async (n: number) => {
    open.get(n)!();
    open.delete(n);
    await new Promise((r) => setImmediate(r));
  };
  return { run, started, open, finish };
}

const tick = () => new Promise((r) => setImmediate(r));
const limits = { maxInFlight: 10, maxPerEndpoint: 2, maxQueued: 100, maxQueuedPerEndpoint: 50 };

describe('WorkQueue', () => {
  it('never runs more than the per-endpoint limit for one endpoint, and starts the next when one finishes', async () => {
    const g = gate();
    const q = new WorkQueue<Item>(limits, g.run);
    for (let n = 0; n < 6; n++) q.push({ endpointKey: 'slow', n });
    await tick();
    expect(g.started.map((i) => i.n)).toEqual([0, 1]);
    expect(q.inFlightFor('slow')).toBe(2);
    expect(q.size).toEqual({ inFlight: 2, queued: 4 });
    await g.finish(0);
    expect(g.started.map((i) => i.n)).toEqual([0, 1, 2]);
    expect(q.inFlightFor('slow')).toBe(2);
  });

  it('a saturated endpoint does not hold back another endpoint (no head-of-line blocking)', async () => {
    const g = gate();
    const q = new WorkQueue<Item>(limits, g.run);
    for (let n = 0; n < 20; n++) q.push({ endpointKey: 'hanging', n });
    for (let n = 100; n < 103; n++) q.push({ endpointKey: 'healthy', n });
    await tick();
    const healthy = g.started.filter((i) => i.endpointKey === 'healthy').map((i) => i.n);
    expect(healthy).toEqual([100, 101]);
    await g.finish(100);
    expect(g.started.filter((i) => i.endpointKey === 'healthy').map((i) => i.n)).toEqual([100, 101, 102]);
    expect(q.inFlightFor('hanging')).toBe(2);
  });

  it('never runs more than the global limit, and serves endpoints round robin', async () => {
    const g = gate();
    const q = new WorkQueue<Item>({ ...limits, maxInFlight: 3, maxPerEndpoint: 3 }, g.run);
    for (let n = 0; n < 5; n++) q.push({ endpointKey: 'a', n });
    for (let n = 10; n < 15; n++) q.push({ endpointKey: 'b', n });
    await tick();
    expect(q.size.inFlight).toBe(3);
    expect(g.started.map((i) => i.n)).toEqual([0, 1, 2]);
    await g.finish(0);
    await g.finish(1);
    expect(q.size.inFlight).toBe(3);
    // b got the freed slots although a still had queued work, and a is not forgotten either.
    expect(g.started.map((i) => i.n)).toEqual([0, 1, 2, 10, 3]);
  });

  it('refuses a push when one endpoint already has a full queue, but accepts other endpoints', async () => {
    const g = gate();
    const q = new WorkQueue<Item>({ ...limits, maxPerEndpoint: 1, maxQueuedPerEndpoint: 3 }, g.run);
    const accepted = [0, 1, 2, 3, 4].map((n) => q.push({ endpointKey: 'slow', n }));
    expect(accepted).toEqual([true, true, true, true, false]); // 1 running + 3 waiting
    expect(q.roomFor('slow')).toBe(0);
    expect(q.push({ endpointKey: 'other', n: 9 })).toBe(true);
    await tick();
    await g.finish(0);
    expect(q.roomFor('slow')).toBe(1);
  });

  it('applies backpressure above maxQueued: waitForRoom waits until work drains, or times out', async () => {
    const g = gate();
    const q = new WorkQueue<Item>({ maxInFlight: 1, maxPerEndpoint: 1, maxQueued: 2, maxQueuedPerEndpoint: 10 }, g.run);
    for (let n = 0; n < 4; n++) q.push({ endpointKey: 'a', n });
    await tick();
    expect(q.size).toEqual({ inFlight: 1, queued: 3 });
    expect(q.hasRoom).toBe(false);
    expect(await q.waitForRoom(20)).toBe(false);
    const waiting = q.waitForRoom(5_000);
    let resolved: boolean | undefined;
    void waiting.then((v) => (resolved = v));
    await g.finish(0);
    await tick();
    expect(resolved).toBeUndefined(); // queued 2: still full
    await g.finish(1);
    await tick();
    expect(resolved).toBe(true);
  });

  it('a run that throws frees its slot', async () => {
    let calls = 0;
    const q = new WorkQueue<Item>({ ...limits, maxPerEndpoint: 1 }, async () => {
      calls++;
      throw new Error('boom');
    });
    q.push({ endpointKey: 'a', n: 1 });
    q.push({ endpointKey: 'a', n: 2 });
    await q.idle();
    expect(calls).toBe(2);
    expect(q.size).toEqual({ inFlight: 0, queued: 0 });
  });

  it('drainQueued hands back what has not started, and idle() then waits only for the running', async () => {
    const g = gate();
    const q = new WorkQueue<Item>({ ...limits, maxPerEndpoint: 1 }, g.run);
    for (let n = 0; n < 4; n++) q.push({ endpointKey: 'a', n });
    await tick();
    expect(q.drainQueued().map((i) => i.n)).toEqual([1, 2, 3]);
    let idle = false;
    void q.idle().then(() => (idle = true));
    await tick();
    expect(idle).toBe(false);
    await g.finish(0);
    await tick();
    expect(idle).toBe(true);
    expect(g.started.map((i) => i.n)).toEqual([0]);
  });

  it('a fast endpoint may queue half a second of its recent completions; a stalled one only the fixed cap', async () => {
    let now = 10_000;
    const g = gate();
    const q = new WorkQueue<Item>({ maxInFlight: 10, maxPerEndpoint: 2, maxQueued: 1_000, maxQueuedPerEndpoint: 5 }, g.run, () => now);
    let n = 0;
    // 40 completions over one second.
    for (let i = 0; i < 40; i++) {
      q.push({ endpointKey: 'fast', n: n++ });
      await tick();
      await g.finish(n - 1);
      now += 25;
    }
    now -= 25;
    expect(q.capFor('fast')).toBe(20);
    let accepted = 0;
    while (q.push({ endpointKey: 'fast', n: n++ })) accepted++;
    // 2 start at once (per-endpoint limit), 20 wait.
    expect(accepted).toBe(22);
    expect(q.roomFor('fast')).toBe(0);
    // A second later with nothing finished, the cap is the fixed one again.
    now += 100;
    now += 1_100;
    expect(q.capFor('fast')).toBe(5);
    expect(q.roomFor('fast')).toBeLessThanOrEqual(0);
    expect(q.push({ endpointKey: 'fast', n: n++ })).toBe(false);
  });

  it('removeQueued takes out waiting items that match, never running ones', async () => {
    const g = gate();
    const q = new WorkQueue<Item>(limits, g.run);
    for (let n = 0; n < 6; n++) q.push({ endpointKey: n % 2 ? 'a' : 'b', n });
    await tick();
    const running = g.started.map((i) => i.n);
    const removed = q.removeQueued((i) => i.n >= 2);
    expect(removed.map((i) => i.n).sort()).toEqual([0, 1, 2, 3, 4, 5].filter((n) => n >= 2 && !running.includes(n)));
    expect(q.size).toEqual({ inFlight: running.length, queued: 6 - running.length - removed.length });
    for (const n of running) await g.finish(n);
    expect(g.started.every((i) => !removed.includes(i))).toBe(true);
  });

  it('waitForEndpointRoom resolves when that endpoint finishes one, or false at its timeout', async () => {
    const g = gate();
    const q = new WorkQueue<Item>({ ...limits, maxPerEndpoint: 1, maxQueuedPerEndpoint: 1 }, g.run);
    q.push({ endpointKey: 'a', n: 0 });
    await tick();
    q.push({ endpointKey: 'a', n: 1 });
    expect(q.roomFor('a')).toBe(0);
    expect(await q.waitForEndpointRoom('a', 10)).toBe(false);
    const waiting = q.waitForEndpointRoom('a', 5_000);
    await g.finish(0);
    expect(await waiting).toBe(true);
    expect(q.rateOf('a')).toBe(1);
    expect(q.rateOf('b')).toBe(0);
  });

  it('rates a new endpoint over the time it has been seen, once it has 20 completions', async () => {
    const now = 50_000;
    const g = gate();
    const q = new WorkQueue<Item>({ maxInFlight: 100, maxPerEndpoint: 100, maxQueued: 10_000, maxQueuedPerEndpoint: 5 }, g.run, () => now);
    for (let n = 0; n < 30; n++) q.push({ endpointKey: 'new', n });
    await tick();
    for (let n = 0; n < 30; n++) await g.finish(n);
    // 30 completions within the first 100 ms: 300/s, so 150 may wait.
    expect(q.rateOf('new')).toBe(300);
    expect(q.capFor('new')).toBe(150);
  });
});

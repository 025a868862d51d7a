import type { Message, ProducerRecord } from 'kafkajs';
import { CoalescingSender } from './coalescing-sender';

/** A producer whose sends the test finishes by hand, one at a time, in order. */
function manualProducer() {
  const sends: { record: ProducerRecord; finish: (err?: Error) => void }[] = [];
  return {
    sends,
    send: (record: ProducerRecord) =>
      new Promise<never[]>((resolve, reject) => {
        sends.push({ record, finish: (err?: Error) => (err ? reject(err) : resolve([])) });
      }),
  };
}

const msgs = (...values: string[]): Message[] => values.map((value) => ({ key: 'ws', value }));
const values = (r: ProducerRecord) => r.messages.map((m) => m.value);
const tick = () => new Promise((r) => setImmediate(r));

describe('CoalescingSender', () => {
  it('sends at once when idle, and merges what arrives meanwhile into the next request, in order', async () => {
    const producer = manualProducer();
    const sender = new CoalescingSender(producer, 'events', 10_000);
    const a = sender.send(msgs('a1', 'a2'), 10);
    const b = sender.send(msgs('b1'), 10);
    const c = sender.send(msgs('c1', 'c2'), 10);
    await tick();
    expect(producer.sends.map((s) => values(s.record))).toEqual([['a1', 'a2']]);
    expect(producer.sends[0]!.record).toMatchObject({ topic: 'events', acks: -1 });

    producer.sends[0]!.finish();
    await a.acknowledged;
    await tick();
    expect(producer.sends.map((s) => values(s.record))).toEqual([['a1', 'a2'], ['b1', 'c1', 'c2']]);
    producer.sends[1]!.finish();
    await Promise.all([b.acknowledged, c.acknowledged]);
  });

  it('cuts merged requests at maxBytes, but sends a single larger entry alone', async () => {
    const producer = manualProducer();
    const sender = new CoalescingSender(producer, 'events', 100);
    const first = sender.send(msgs('first'), 10);
    const rest = [sender.send(msgs('x'), 60), sender.send(msgs('y'), 60), sender.send(msgs('huge'), 500)];
    for (let i = 0; i < 4; i++) {
      await tick();
      producer.sends[i]?.finish();
    }
    await Promise.all([first, ...rest].map((s) => s.acknowledged));
    expect(producer.sends.map((s) => values(s.record))).toEqual([['first'], ['x'], ['y'], ['huge']]);
  });

  it('fails every entry of a failed request, and keeps going with the next', async () => {
    const producer = manualProducer();
    const sender = new CoalescingSender(producer, 'events', 10_000);
    const a = sender.send(msgs('a'), 10);
    const b = sender.send(msgs('b'), 10);
    const c = sender.send(msgs('c'), 10);
    await tick();
    producer.sends[0]!.finish();
    await a.acknowledged;
    await tick();
    producer.sends[1]!.finish(new Error('broker gone'));
    await expect(b.acknowledged).rejects.toThrow('broker gone');
    await expect(c.acknowledged).rejects.toThrow('broker gone');
    const d = sender.send(msgs('d'), 10);
    await tick();
    producer.sends[2]!.finish();
    await d.acknowledged;
    expect(producer.sends.map((s) => values(s.record))).toEqual([['a'], ['b', 'c'], ['d']]);
  });

  it('lets a caller withdraw records no request carries yet, and only those', async () => {
    const producer = manualProducer();
    const sender = new CoalescingSender(producer, 'events', 10_000);
    const a = sender.send(msgs('a'), 10);
    const b = sender.send(msgs('b'), 10);
    await tick();
    expect(a.withdraw()).toBe(false);
    expect(b.withdraw()).toBe(true);
    producer.sends[0]!.finish();
    await a.acknowledged;
    await tick();
    expect(producer.sends.map((s) => values(s.record))).toEqual([['a']]);
  });
});

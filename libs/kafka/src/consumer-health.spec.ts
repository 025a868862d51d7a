import { EventEmitter } from 'node:events';
import { KafkaJSNonRetriableError, KafkaJSProtocolError } from 'kafkajs';
import { isRebalanceError, watchConsumer } from './index';

describe('isRebalanceError', () => {
  it('recognises a lost membership, also wrapped as kafkajs wraps it', () => {
    const unknownMember = new KafkaJSProtocolError('The coordinator is not aware of this member');
    Object.assign(unknownMember, { type: 'UNKNOWN_MEMBER_ID' });
    expect(isRebalanceError(unknownMember)).toBe(true);
    expect(isRebalanceError(new KafkaJSNonRetriableError(unknownMember))).toBe(true);
    expect(isRebalanceError(Object.assign(new Error('x'), { type: 'REBALANCE_IN_PROGRESS' }))).toBe(true);
  });

  it('leaves other failures alone', () => {
    expect(isRebalanceError(new Error('Connection error: ECONNREFUSED'))).toBe(false);
    expect(isRebalanceError(Object.assign(new Error('x'), { type: 'UNKNOWN_TOPIC_OR_PARTITION' }))).toBe(false);
    expect(isRebalanceError('not an error')).toBe(false);
  });
});

describe('watchConsumer', () => {
  const events = { CRASH: 'crash', DISCONNECT: 'disconnect', GROUP_JOIN: 'join', FETCH_START: 'fetch' };
  function fake() {
    const emitter = new EventEmitter();
    const consumer = { events, on: (e: string, fn: (x: unknown) => void) => emitter.on(e, fn) } as never;
    const downs: string[] = [];
    const readiness = { markDown: (dep: string, why: string) => downs.push(`${dep}: ${why}`), markUp: () => undefined } as never;
    return { emitter, consumer, readiness, downs };
  }

  it('calls onFatal only when kafkajs will not restart the consumer', () => {
    const { emitter, consumer, readiness, downs } = fake();
    const fatal: Error[] = [];
    watchConsumer(consumer, readiness, 'events', { onFatal: (e) => fatal.push(e) });
    emitter.emit('crash', { payload: { error: new Error('retriable'), restart: true } });
    expect(fatal).toHaveLength(0);
    emitter.emit('crash', { payload: { error: new Error('not aware of this member'), restart: false } });
    expect(fatal.map((e) => e.message)).toEqual(['not aware of this member']);
    expect(downs).toHaveLength(2);
  });
});

describe('watchConsumer and a lost group coordinator', () => {
  const events = { CRASH: 'crash', DISCONNECT: 'disconnect', GROUP_JOIN: 'join', FETCH_START: 'fetch' };
  const readiness = { markDown: () => undefined, markUp: () => undefined } as never;
  const lost = () => Object.assign(new Error('Failed to find group coordinator'), { name: 'KafkaJSGroupCoordinatorNotFound' });
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function watched(rerunForMs?: number) {
    const emitter = new EventEmitter();
    const consumer = { events, on: (e: string, fn: (x: unknown) => void) => emitter.on(e, fn) } as never;
    const fatal: Error[] = [];
    let reruns = 0;
    const watch = watchConsumer(consumer, readiness, 'events', { onFatal: (e) => fatal.push(e), rerun: async () => void reruns++, rerunForMs });
    return { emitter, fatal, watch, reruns: () => reruns };
  }

  it('runs the consumer again, backing off, instead of giving up', () => {
    const { emitter, fatal, reruns } = watched();
    emitter.emit('crash', { payload: { error: lost(), restart: false } });
    jest.advanceTimersByTime(999);
    expect(reruns()).toBe(0);
    jest.advanceTimersByTime(1);
    expect(reruns()).toBe(1);
    emitter.emit('crash', { payload: { error: new KafkaJSNonRetriableError(lost()), restart: false } });
    jest.advanceTimersByTime(1_999);
    expect(reruns()).toBe(1);
    jest.advanceTimersByTime(1);
    expect(reruns()).toBe(2);
    expect(fatal).toHaveLength(0);
  });

  it('is fatal once the streak outlasts its budget, and a rejoin starts a new streak', () => {
    const { emitter, fatal, reruns } = watched(30_000);
    for (let i = 0; i < 4; i++) {
      emitter.emit('crash', { payload: { error: lost(), restart: false } });
      jest.advanceTimersByTime(10_000);
    }
    expect(reruns()).toBe(3);
    expect(fatal.map((e) => e.name)).toEqual(['KafkaJSGroupCoordinatorNotFound']);
    emitter.emit('join', { payload: {} });
    emitter.emit('crash', { payload: { error: lost(), restart: false } });
    jest.advanceTimersByTime(1_000);
    expect(reruns()).toBe(4);
    expect(fatal).toHaveLength(1);
  });

  it('does not run a closed consumer again, and other errors stay fatal', () => {
    const { emitter, fatal, watch, reruns } = watched();
    emitter.emit('crash', { payload: { error: new Error('not aware of this member'), restart: false } });
    expect(fatal).toHaveLength(1);
    emitter.emit('crash', { payload: { error: lost(), restart: false } });
    watch.close();
    jest.advanceTimersByTime(60_000);
    expect(reruns()).toBe(0);
    expect(fatal).toHaveLength(1);
  });

  it('close() waits for a re-run under way (at most 5 s), so the disconnect after it stops the consumer', async () => {
    const emitter = new EventEmitter();
    const consumer = { events, on: (e: string, fn: (x: unknown) => void) => emitter.on(e, fn) } as never;
    let joined!: () => void;
    const watch = watchConsumer(consumer, readiness, 'events', { rerun: () => new Promise<void>((r) => (joined = r)) });
    emitter.emit('crash', { payload: { error: lost(), restart: false } });
    jest.advanceTimersByTime(1_000);
    let closed = false;
    const closing = watch.close().then(() => (closed = true));
    await Promise.resolve();
    expect(closed).toBe(false);
    joined();
    await closing;
    expect(closed).toBe(true);
    // A re-run that never ends does not hold the stop for longer than 5 s.
    emitter.emit('crash', { payload: { error: lost(), restart: false } });
    const stuck = watchConsumer(consumer, readiness, 'events', { rerun: () => new Promise<void>(() => undefined) });
    emitter.emit('crash', { payload: { error: lost(), restart: false } });
    jest.advanceTimersByTime(2_000);
    const giving = stuck.close();
    jest.advanceTimersByTime(5_000);
    await giving;
  });
});

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
    watchConsumer(consumer, readiness, 'events', (e) => fatal.push(e));
    emitter.emit('crash', { payload: { error: new Error('retriable'), restart: true } });
    expect(fatal).toHaveLength(0);
    emitter.emit('crash', { payload: { error: new Error('not aware of this member'), restart: false } });
    expect(fatal.map((e) => e.message)).toEqual(['not aware of this member']);
    expect(downs).toHaveLength(2);
  });
});

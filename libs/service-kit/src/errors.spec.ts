import { status } from '@grpc/grpc-js';
import { isDependencyUnavailable, toGrpcStatus } from './errors';

const named = (name: string, extra: object = {}): Error => Object.assign(Object.defineProperty(new Error('boom'), 'name', { value: name }), extra);

describe('isDependencyUnavailable', () => {
  it.each(['MongoNetworkError', 'MongoPoolClearedError', 'PoolClearedOnNetworkError', 'MongoServerSelectionError', 'KafkaJSConnectionError'])('%s is a dependency outage', (name) => {
    expect(isDependencyUnavailable(named(name))).toBe(true);
  });

  it('follows causes, reads retry labels and FerretDB lock errors', () => {
    expect(isDependencyUnavailable(new Error('wrapped', { cause: named('MongoPoolClearedError') }))).toBe(true);
    expect(isDependencyUnavailable(named('MongoServerError', { errorLabels: ['RetryableWriteError'] }))).toBe(true);
    expect(isDependencyUnavailable(new Error('SQLite error: database is locked (SQLITE_BUSY)'))).toBe(true);
    // insertMany while the server is down: MongoBulkWriteError with the selection error in errorResponse.
    expect(isDependencyUnavailable(named('MongoBulkWriteError', { errorResponse: named('MongoServerSelectionError') }))).toBe(true);
    expect(isDependencyUnavailable(named('MongoBulkWriteError', { errorResponse: { code: 11000 } }))).toBe(false);
  });

  it('bugs and bad input are not outages', () => {
    expect(isDependencyUnavailable(new TypeError('x is undefined'))).toBe(false);
    expect(isDependencyUnavailable(named('MongoServerError', { code: 11000 }))).toBe(false);
    expect(isDependencyUnavailable('a string')).toBe(false);
  });

  it('outages answer UNAVAILABLE without internal text', () => {
    const s = toGrpcStatus(named('MongoPoolClearedError'), () => undefined);
    expect(s.code).toBe(status.UNAVAILABLE);
    expect(s.details).not.toMatch(/boom|Pool/);
  });
});

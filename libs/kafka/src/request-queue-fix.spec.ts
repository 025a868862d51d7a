import { createRequire } from 'node:module';
import { fixRequestQueue } from './request-queue-fix';

type Queue = { throttledUntil: number; throttleCheckTimeoutId: NodeJS.Timeout | null; pending: unknown[]; scheduleCheckPendingRequests(): void; checkPendingRequests(): void };
const RequestQueue = createRequire(require.resolve('kafkajs'))('./src/network/requestQueue') as new (o: object) => Queue;
const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const queue = () => new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1_000, enforceRequestTimeout: true, clientId: 't', broker: 'b', logger });

describe('fixRequestQueue', () => {
  const original = RequestQueue.prototype.scheduleCheckPendingRequests;
  afterAll(() => {
    RequestQueue.prototype.scheduleCheckPendingRequests = original;
  });

  it("as shipped, kafkajs arms a timer with nothing pending and nothing throttled (the 1 ms loop it fixes)", () => {
    // Fake timers: the real one would print the TimeoutNegativeWarning this fix removes.
    jest.useFakeTimers();
    try {
      const q = queue();
      q.scheduleCheckPendingRequests();
      expect(q.throttleCheckTimeoutId).not.toBeNull();
      clearTimeout(q.throttleCheckTimeoutId!);
    } finally {
      jest.useRealTimers();
    }
  });

  it('arms no timer when nothing is pending and nothing is throttled', () => {
    expect(fixRequestQueue()).toBe(RequestQueue);
    const q = queue();
    q.scheduleCheckPendingRequests();
    expect(q.throttleCheckTimeoutId).toBeNull();
  });

  it('still checks pending requests, and waits out a throttle', () => {
    jest.useFakeTimers();
    try {
      fixRequestQueue();
      const q = queue();
      const checked = jest.spyOn(q, 'checkPendingRequests').mockImplementation(() => undefined);
      q.pending.push({});
      q.scheduleCheckPendingRequests();
      jest.advanceTimersByTime(10);
      expect(checked).toHaveBeenCalledTimes(1);
      q.pending.length = 0;
      q.throttledUntil = Date.now() + 500;
      q.scheduleCheckPendingRequests();
      jest.advanceTimersByTime(499);
      expect(checked).toHaveBeenCalledTimes(1);
      jest.advanceTimersByTime(1);
      expect(checked).toHaveBeenCalledTimes(2);
    } finally {
      jest.useRealTimers();
    }
  });
});

import { attemptFromStored, storedAttempt, type AttemptDoc } from './models';

const attempt: AttemptDoc = {
  _id: 'att_0192f3a4b5c6d7e8f90a1b2c3d4e5f60',
  deliveryId: 'evt_1|ep_1',
  workspaceId: 'ws_1',
  endpointId: 'ep_1',
  eventId: 'evt_1',
  eventType: 'invoice.paid',
  kind: 'live',
  outcome: 'failed',
  attemptNumber: 2,
  url: 'https://hooks.example.com/in?token=x',
  resolvedIp: '203.0.113.7',
  requestHeaders: { 'content-type': 'application/json', 'x-webhook-id': 'evt_1', 'x-signature-256': 'sha256=ab' },
  responseStatus: 503,
  responseHeaders: { 'retry-after': '30', 'content-type': 'text/plain' },
  responseBody: 'busy "now"\n',
  responseBodyTruncated: true,
  durationMs: 1234,
  error: '',
  nextAttemptAt: new Date('2026-12-06T10:00:30.000Z'),
  eventCreatedAt: new Date('2026-12-06T10:00:00.000Z'),
  createdAt: new Date('2026-12-06T10:00:01.000Z'),
  expiresAt: new Date('2027-01-05T10:00:01.000Z'),
};

describe('stored attempts', () => {
  it('keep the fields queries use at the top and the rest in one string', () => {
    const s = storedAttempt(attempt);
    expect(Object.keys(s).sort()).toEqual(['_id', 'attemptNumber', 'createdAt', 'deliveryId', 'detail', 'endpointId', 'eventCreatedAt', 'eventId', 'eventType', 'kind', 'nextAttemptAt', 'outcome', 'responseStatus', 'workspaceId']);
    expect(typeof s.detail).toBe('string');
    expect(s).not.toHaveProperty('requestHeaders');
  });

  it('read back as the attempt written, dates included', () => {
    expect(attemptFromStored(storedAttempt(attempt))).toEqual(attempt);
    expect(attemptFromStored(storedAttempt({ ...attempt, nextAttemptAt: null }))).toEqual({ ...attempt, nextAttemptAt: null });
  });

  it('written before this shape (every field at the top) read as they are', () => {
    expect(attemptFromStored(attempt)).toBe(attempt);
  });
});

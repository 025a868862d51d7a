import { createLogger } from '@hookline/service-kit';
import { generateSecret, verifySignature256, verifyStandard } from '@hookline/signing';
import type { HttpResult } from './http-attempt';
import { classify, decide, DeliveryPipeline, prepare, USER_AGENT, type EventData } from './pipeline';
import type { AttemptDoc } from '../store/models';
import { ScheduleRetryPolicy } from './retry-policy';

const NOW = Date.parse('2025-03-01T12:00:00Z');
const event: EventData = {
  id: 'evt_0195532b3c00700080000000000000aa',
  workspaceId: 'ws_1',
  type: 'invoice.paid',
  createdAt: new Date('2025-03-01T11:59:59.123Z'),
  payload: Buffer.from('{"invoice_id":"in_1","amount":100,"note":"héllo ✓"}', 'utf8'),
};

const response = (status: number, headers: Record<string, string> = {}): HttpResult => ({ kind: 'response', status, headers, body: '', bodyTruncated: false, durationMs: 5, resolvedIp: '203.0.113.9' });

describe('prepare', () => {
  const current = generateSecret();
  const previous = generateSecret();

  it('builds the documented body and headers, X-Signature-256 over the exact bytes with the newest secret', () => {
    const req = prepare(event, { endpointId: 'ep_1', url: 'https://example.com/hook', secrets: [current, previous], standardWebhooks: false }, NOW);
    expect(req.url).toBe('https://example.com/hook');
    expect(JSON.parse(req.body.toString('utf8'))).toEqual({ id: event.id, type: 'invoice.paid', created_at: '2025-03-01T11:59:59.123Z', data: { invoice_id: 'in_1', amount: 100, note: 'héllo ✓' } });
    expect(req.headers).toEqual({
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'x-webhook-id': event.id,
      'x-webhook-event': 'invoice.paid',
      'x-webhook-timestamp': String(NOW / 1000),
      'x-signature-256': expect.stringMatching(/^sha256=[0-9a-f]{64}$/),
    });
    expect(req.headers['user-agent']).toMatch(/Hookline/);
    expect(verifySignature256(req.body, current, req.headers['x-signature-256'])).toBe(true);
    expect(verifySignature256(req.body, previous, req.headers['x-signature-256'])).toBe(false);
    expect(req.headers).not.toHaveProperty('webhook-signature');
  });

  it('keeps X-Webhook-Id stable across attempts while the timestamp moves', () => {
    const sub = { endpointId: 'ep_1', url: 'https://example.com/hook', secrets: [current], standardWebhooks: true };
    const a = prepare(event, sub, NOW);
    const b = prepare(event, sub, NOW + 300_000);
    expect(b.headers['x-webhook-id']).toBe(a.headers['x-webhook-id']);
    expect(b.headers['webhook-id']).toBe(event.id);
    expect(Number(b.headers['x-webhook-timestamp']) - Number(a.headers['x-webhook-timestamp'])).toBe(300);
    expect(b.body.equals(a.body)).toBe(true);
  });

  it('adds Standard Webhooks headers signed with every active secret during a rotation', () => {
    const req = prepare(event, { endpointId: 'ep_1', url: 'https://example.com/hook', secrets: [current, previous], standardWebhooks: true }, NOW);
    expect(req.headers['webhook-id']).toBe(event.id);
    expect(req.headers['webhook-timestamp']).toBe(String(NOW / 1000));
    const sigs = req.headers['webhook-signature']!.split(' ');
    expect(sigs).toHaveLength(2);
    for (const s of sigs) expect(s).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const headers = { 'webhook-id': req.headers['webhook-id'], 'webhook-timestamp': req.headers['webhook-timestamp'], 'webhook-signature': req.headers['webhook-signature'] };
    // A receiver holding only the old secret, or only the new one, accepts the delivery.
    expect(verifyStandard(req.body, previous, headers, NOW / 1000)).toEqual({ ok: true });
    expect(verifyStandard(req.body, current, headers, NOW / 1000)).toEqual({ ok: true });
    expect(verifyStandard(req.body, generateSecret(), headers, NOW / 1000)).toEqual({ ok: false, reason: 'no-match' });
  });
});

describe('classify', () => {
  it.each([200, 201, 202, 204, 299])('%i is delivered', (s) => {
    expect(classify(response(s), NOW)).toEqual({ kind: 'delivered' });
  });

  it.each([301, 302, 303, 307, 308])('%i is a retryable failure: redirects are never followed', (s) => {
    expect(classify(response(s, { location: 'https://elsewhere.example/' }), NOW)).toEqual({ kind: 'failed', retryable: true, reason: `redirect ${s} not followed` });
  });

  it('410 is final and marks the endpoint gone', () => {
    expect(classify(response(410), NOW)).toMatchObject({ kind: 'failed', retryable: false, gone: true });
  });

  it.each([400, 404, 500, 502, 504])('%i is a retryable failure without a hint', (s) => {
    const r = classify(response(s, { 'retry-after': '30' }), NOW);
    expect(r).toEqual({ kind: 'failed', retryable: true, reason: `endpoint answered ${s}` });
  });

  it.each([429, 503])('%i carries Retry-After (seconds or date)', (s) => {
    expect(classify(response(s, { 'retry-after': '30' }), NOW)).toMatchObject({ kind: 'failed', retryable: true, retryAfterMs: 30_000 });
    expect(classify(response(s, { 'retry-after': new Date(NOW + 90_000).toUTCString() }), NOW)).toMatchObject({ retryAfterMs: 90_000 });
    expect(classify(response(s), NOW)).not.toHaveProperty('retryAfterMs');
  });

  it('network errors, timeouts and refusals are retryable failures with their reason', () => {
    expect(classify({ kind: 'error', error: 'timed out after 10000 ms', refused: false, durationMs: 10_000, resolvedIp: '' }, NOW)).toEqual({ kind: 'failed', retryable: true, reason: 'timed out after 10000 ms' });
  });
});

describe('decide', () => {
  const policy = new ScheduleRetryPolicy([5_000, 300_000], 0);

  it('2xx succeeds', () => {
    expect(decide({ kind: 'delivered' }, 1, policy, NOW)).toEqual({ kind: 'succeeded' });
  });

  it('retries on the schedule, then fails visibly when it is exhausted', () => {
    const failed = { kind: 'failed' as const, retryable: true, reason: 'endpoint answered 500' };
    expect(decide(failed, 1, policy, NOW)).toEqual({ kind: 'retry', at: new Date(NOW + 5_000), reason: 'endpoint answered 500' });
    expect(decide(failed, 2, policy, NOW)).toEqual({ kind: 'retry', at: new Date(NOW + 300_000), reason: 'endpoint answered 500' });
    expect(decide(failed, 3, policy, NOW)).toEqual({ kind: 'failed', reason: 'endpoint answered 500; no retries left after 3 attempts' });
  });

  it('a 3xx is retried like any failure, never followed', () => {
    expect(decide(classify(response(302), NOW), 1, policy, NOW)).toMatchObject({ kind: 'retry', reason: 'redirect 302 not followed' });
  });

  it('410 fails at once and disables the endpoint', () => {
    expect(decide(classify(response(410), NOW), 1, policy, NOW)).toEqual({ kind: 'failed', reason: 'endpoint answered 410 Gone', disableEndpoint: 'gone' });
  });

  it('429/503 with Retry-After schedule the next attempt at the hint, not the schedule', () => {
    expect(decide(classify(response(429, { 'retry-after': '120' }), NOW), 1, policy, NOW)).toMatchObject({ kind: 'retry', at: new Date(NOW + 120_000), retryAfter: true });
    expect(decide(classify(response(503, { 'retry-after': '86400' }), NOW), 1, policy, NOW)).toMatchObject({ kind: 'retry', at: new Date(NOW + 6 * 3_600_000) });
  });
});

describe('DeliveryPipeline.record when another chain recorded the same attempt first', () => {
  const task = { event, endpointId: 'ep_1', attemptsMade: 0, dueAt: NOW, verify: false };
  const attempt = { _id: 'att_x', deliveryId: `${event.id}|ep_1`, attemptNumber: 1, eventCreatedAt: event.createdAt } as AttemptDoc;
  /** record() of a retry decision whose attempt insert lost to `theirs` (null: not found). */
  async function scheduled(theirs: Partial<AttemptDoc> | null): Promise<number> {
    const produced: unknown[] = [];
    const pipeline = new DeliveryPipeline({
      models: { attempts: { of: () => ({ findOne: () => ({ lean: async () => theirs }) }) } } as never,
      writer: { record: async () => ({ attemptNew: false }) } as never,
      waiting: { wait: async (tasks: unknown[]) => void produced.push(...tasks) },
      streaksTrustMs: 0,
      log: createLogger('test', 'silent'),
    } as never);
    (pipeline as unknown as { recordFailureStreak: () => Promise<void> }).recordFailureStreak = async () => undefined;
    await pipeline.record({ task, decision: { kind: 'retry', at: new Date(NOW + 1_000), reason: '500' }, outcome: { attempt }, next: { ...task, attemptsMade: 1 }, done: {} });
    return produced.length;
  }

  it('goes on when that attempt planned a retry: the replica that made it may have died before producing it', async () => {
    expect(await scheduled({ outcome: 'failed', nextAttemptAt: new Date(NOW + 1_000) })).toBe(1);
    expect(await scheduled(null)).toBe(1);
  });

  it('stops when that attempt ended the delivery', async () => {
    expect(await scheduled({ outcome: 'succeeded', nextAttemptAt: null })).toBe(0);
    expect(await scheduled({ outcome: 'failed', nextAttemptAt: null })).toBe(0);
  });
});

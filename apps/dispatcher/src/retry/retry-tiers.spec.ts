import { delayLabel, RetryTiers } from './retry-tiers';
import { decodeTask, dueOf, encodeTask, type Task } from './tasks';

const SETTINGS = { prefix: 'webhooks.retry', partitions: 12, retentionMarginMs: 7 * 24 * 3_600_000 };
const S = 1_000;
const M = 60 * S;
const H = 60 * M;
const tiers = new RetryTiers([5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H], SETTINGS, 0.2);

describe('RetryTiers', () => {
  it('has one topic per distinct delay, named by its largest whole unit', () => {
    expect(tiers.topics).toEqual(['webhooks.retry.now.v1', 'webhooks.retry.5s.v1', 'webhooks.retry.5m.v1', 'webhooks.retry.30m.v1', 'webhooks.retry.2h.v1', 'webhooks.retry.5h.v1', 'webhooks.retry.10h.v1']);
    expect([delayLabel(200), delayLabel(1_500), delayLabel(90 * S), delayLabel(0)]).toEqual(['200ms', '1500ms', '90s', 'now']);
    expect(tiers.shortest.delayMs).toBe(5 * S);
  });

  it('keeps each tier at least its delay plus a margin, and makes the partitions asked for', () => {
    const [, five] = tiers.topicSpecs();
    expect(five).toEqual({ name: 'webhooks.retry.5s.v1', partitions: 12, configs: { 'retention.ms': String(10 * S + 7 * 24 * H) } });
  });

  it('puts a jittered scheduled delay in the tier of its slot, and a Retry-After at or above it', () => {
    // ±20 % around each delay stays in that delay's tier.
    for (const base of [5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H]) {
      expect(tiers.forWait(base * 0.8).delayMs).toBe(base);
      expect(tiers.forWait(base * 1.2).delayMs).toBe(base);
    }
    // Retry-After 90 s: not the 5 s tier (it would hold that tier's records), the 5 m one.
    expect(tiers.forWait(90 * S).delayMs).toBe(5 * M);
    // Due at once (a manual retry): the `now` tier, whose head is always due.
    expect(tiers.forWait(0).delayMs).toBe(0);
    expect(tiers.forWait(1).delayMs).toBe(5 * S);
    // Beyond the longest tier: the longest (the record hops when it reaches the head too early).
    expect(tiers.forWait(24 * H).delayMs).toBe(10 * H);
  });

  it('a head due later than its tier can wait hops; one within the tier is waited for', () => {
    const five = tiers.byTopic('webhooks.retry.5s.v1')!;
    expect(tiers.hopsFrom(five, 6 * S)).toBe(false);
    expect(tiers.hopsFrom(five, 90 * S)).toBe(true);
    expect(tiers.byTopic('other')).toBeUndefined();
  });

  it('an empty schedule still has a tier for overflow and one for what is due at once', () => {
    expect(new RetryTiers([], SETTINGS, 0).topics).toEqual(['webhooks.retry.now.v1', 'webhooks.retry.5s.v1']);
  });
});

describe('task records', () => {
  const task: Task = {
    event: { id: 'evt_1', workspaceId: 'ws_1', type: 'order.created', createdAt: new Date(1_700_000_000_000), payload: Buffer.from('{"a":1}') },
    endpointId: 'ep_1',
    attemptsMade: 3,
    dueAt: 1_700_000_005_000,
    verify: true,
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  };

  it('round-trip through the record, with the due time and attempt in headers', () => {
    const m = encodeTask(task);
    expect(m.key).toBe('evt_1|ep_1');
    expect(m.headers).toEqual({ 'hookline-due-at': '1700000005000', 'hookline-attempt': '4' });
    const back = decodeTask({ value: m.value as Buffer, headers: m.headers as Record<string, string> });
    expect(back).toEqual(task);
    expect(dueOf({ headers: { 'hookline-due-at': Buffer.from('1700000005000') } })).toBe(1_700_000_005_000);
    expect(dueOf({ headers: {} })).toBe(0);
  });

  it('refuses a record that is not a task', () => {
    expect(() => decodeTask({ value: null, headers: {} })).toThrow(/empty/);
    expect(() => decodeTask({ value: Buffer.from([0x0a, 0x00]), headers: {} })).toThrow(/lacks/);
  });
});

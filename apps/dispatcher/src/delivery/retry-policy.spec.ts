import { parseRetryAfter, parseSchedule, ScheduleRetryPolicy } from './retry-policy';

describe('parseSchedule', () => {
  it('reads the product schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h', () => {
    expect(parseSchedule('5s,5m,30m,2h,5h,10h,10h')).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
  });

  it('accepts milliseconds and spaces (the tests use "200ms,200ms,200ms")', () => {
    expect(parseSchedule(' 200ms , 1s')).toEqual([200, 1_000]);
  });

  it.each(['', '5', '5d', '-5s', '5s,,5s', '1.5s'])('refuses %j with a readable message', (text) => {
    expect(() => parseSchedule(text)).toThrow(/is not a duration like/);
  });

  it('refuses more than 50 retries', () => {
    expect(() => parseSchedule(Array(51).fill('1s').join(','))).toThrow(/at most 50/);
  });
});

describe('ScheduleRetryPolicy', () => {
  const schedule = parseSchedule('5s,5m,30m,2h,5h,10h,10h');

  it('without jitter follows the schedule exactly, then gives up after 8 attempts', () => {
    const p = new ScheduleRetryPolicy(schedule, 0);
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => p.nextDelay(n))).toEqual(schedule);
    expect(p.nextDelay(8)).toBeNull();
    expect(p.nextDelay(100)).toBeNull();
  });

  it('keeps jitter within ± the configured fraction, reaching both ends', () => {
    const lo = new ScheduleRetryPolicy(schedule, 0.2, () => 0);
    const hi = new ScheduleRetryPolicy(schedule, 0.2, () => 0.999999);
    const mid = new ScheduleRetryPolicy(schedule, 0.2, () => 0.5);
    expect(lo.nextDelay(2)).toBe(240_000);
    expect(hi.nextDelay(2)).toBe(360_000);
    expect(mid.nextDelay(2)).toBe(300_000);
    const random = new ScheduleRetryPolicy(schedule, 0.2);
    for (let i = 0; i < 1_000; i++) {
      const d = random.nextDelay(1)!;
      expect(d).toBeGreaterThanOrEqual(4_000);
      expect(d).toBeLessThanOrEqual(6_000);
    }
  });

  it('honours Retry-After instead of the schedule, within [1 s, 6 h]', () => {
    const p = new ScheduleRetryPolicy(schedule, 0.2, () => 0);
    expect(p.nextDelay(1, 120_000)).toBe(120_000);
    expect(p.nextDelay(1, 0)).toBe(1_000);
    expect(p.nextDelay(1, 10)).toBe(1_000);
    expect(p.nextDelay(1, 7 * 24 * 3_600_000)).toBe(6 * 3_600_000);
  });

  it('does not let Retry-After extend the number of attempts', () => {
    expect(new ScheduleRetryPolicy(schedule, 0).nextDelay(8, 5_000)).toBeNull();
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
  });
  it('reads an HTTP date relative to now, never negative', () => {
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:01:00 GMT', now)).toBe(60_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
  });
  it('ignores absent or unreadable values', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
  });
});

// Retry policy is data: the delays before attempts 2..N. The default is the product promise:
// immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over ~27.6 h).

export interface RetryPolicy {
  /** Milliseconds before the next attempt after `attemptsMade` failures, or null when exhausted. */
  nextDelay(attemptsMade: number, retryAfterMs?: number): number | null;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Parses "5s,5m,30m,2h" into milliseconds. Throws with a readable message. */
export function parseSchedule(text: string): number[] {
  const out = text.split(',').map((part) => {
    const m = /^\s*(\d+)(ms|s|m|h)\s*$/.exec(part);
    if (!m) throw new Error(`"${part.trim()}" is not a duration like 500ms, 5s, 5m or 2h`);
    return Number(m[1]) * UNIT_MS[m[2]!]!;
  });
  if (out.length > 50) throw new Error('at most 50 retries');
  return out;
}

/** Retry-After is honoured within [1 s, 6 h]: a hint, not a way to park a delivery for ever. */
const RETRY_AFTER_MIN = 1_000;
const RETRY_AFTER_MAX = 6 * 3_600_000;

export class ScheduleRetryPolicy implements RetryPolicy {
  constructor(
    private readonly delays: readonly number[],
    private readonly jitter: number,
    private readonly random: () => number = Math.random,
  ) {}

  nextDelay(attemptsMade: number, retryAfterMs?: number): number | null {
    const base = this.delays[attemptsMade - 1];
    if (base === undefined) return null;
    if (retryAfterMs !== undefined) return Math.min(Math.max(retryAfterMs, RETRY_AFTER_MIN), RETRY_AFTER_MAX);
    return Math.round(base * (1 + this.jitter * (2 * this.random() - 1)));
  }
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a day name; without this
  // check Date.parse reads "-5" or "1" as a year and the hint as "long ago".
  if (!/^[A-Za-z]{3,9},? /.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(at - nowMs, 0);
}

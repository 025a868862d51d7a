// Groups attempts into time buckets for the endpoint chart. An attempt counts as "retrying" when
// a later attempt of the same event exists, "failed" when it is the event's latest and failed,
// "succeeded" when it succeeded. Answer time is the mean duration of the bucket's attempts.
import type { Attempt } from '../../api';

export interface Bucket {
  start: number;
  succeeded: number;
  retrying: number;
  failed: number;
  meanMs: number | null;
}

export function bucketAttempts(attempts: Attempt[], count = 12, now = Date.now()): Bucket[] {
  const times = attempts.map((a) => Date.parse(a.createTime ?? '')).filter((t) => !Number.isNaN(t));
  const oldest = times.length ? Math.min(...times) : now - 3_600_000;
  // At least an hour, in whole minutes, so a handful of attempts do not make one giant bar.
  const span = Math.max(now - oldest, 3_600_000);
  const width = Math.ceil(span / count / 60_000) * 60_000;
  const start0 = now - width * count;
  const buckets: Bucket[] = Array.from({ length: count }, (_, i) => ({ start: start0 + i * width, succeeded: 0, retrying: 0, failed: 0, meanMs: null }));
  const latest = new Map<string, number>();
  for (const a of attempts) latest.set(a.eventId, Math.max(latest.get(a.eventId) ?? 0, a.attemptNumber));
  const sums = new Array<number>(count).fill(0);
  const ns = new Array<number>(count).fill(0);
  for (const a of attempts) {
    const t = Date.parse(a.createTime ?? '');
    const i = Math.min(count - 1, Math.floor((t - start0) / width));
    if (Number.isNaN(t) || i < 0) continue;
    const b = buckets[i]!;
    if (a.outcome === 'succeeded') b.succeeded++;
    else if (a.attemptNumber < (latest.get(a.eventId) ?? 0)) b.retrying++;
    else b.failed++;
    if (a.durationMs !== null) {
      sums[i]! += a.durationMs;
      ns[i]!++;
    }
  }
  buckets.forEach((b, i) => (b.meanMs = ns[i] ? Math.round(sums[i]! / ns[i]!) : null));
  return buckets;
}

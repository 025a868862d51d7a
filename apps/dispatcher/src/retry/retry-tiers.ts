// Retry tiers: one Kafka topic per distinct delay of RETRY_SCHEDULE (webhooks.retry.5s.v1,
// webhooks.retry.5m.v1, …). A delivery that must wait is produced to the tier whose delay covers
// its wait, with its due time in a header; the dispatchers consume every tier as one consumer
// group and pause a partition until its head is due. Records of one tier were produced with
// (about) the same delay, so they arrive in (about) due order: a partition never waits behind
// a record much later than its own. With ±jitter on the delay, a record can wait behind an
// earlier one by at most the jitter spread, so its real delay stays within
// [delay × (1 − jitter), delay × (1 + jitter)].
import type { TopicSpec } from '@hookline/kafka';

export interface Tier {
  delayMs: number;
  /** 5s, 5m, 2h, 1500ms: the delay as it appears in the topic name. */
  label: string;
  topic: string;
}

export interface RetryTierSettings {
  /** Topic names are `${prefix}.${label}.v1`. Default webhooks.retry. */
  prefix: string;
  /** Partitions per tier topic (the most dispatchers sharing one tier's work). Default 12. */
  partitions: number;
  /** Retention beyond the tier's delay, so records outlive a long outage of every dispatcher. Default 7 days. */
  retentionMarginMs: number;
}

/** 5s, 5m, 2h, or 1500ms: the largest unit that divides the delay; `now` for 0. */
export function delayLabel(ms: number): string {
  if (ms === 0) return 'now';
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms > 0 && ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

export class RetryTiers {
  /** Ascending by delay. */
  readonly tiers: readonly Tier[];

  constructor(
    schedule: readonly number[],
    private readonly settings: RetryTierSettings,
    /** ± fraction applied to scheduled delays (RETRY_JITTER_PERCENT / 100). */
    private readonly jitter: number,
  ) {
    // Tier 0 (`now`) takes what is due at once: manual retries, recoveries, work handed back at
    // shutdown or waiting in memory too long. Its head is always due, so it is never paused and
    // never holds anything back. An empty schedule (no retries) still needs a positive tier for
    // overflow and postponed work.
    const delays = [...new Set([0, ...schedule])].sort((a, b) => a - b);
    if (delays.length === 1) delays.push(5_000);
    this.tiers = delays.map((delayMs) => ({ delayMs, label: delayLabel(delayMs), topic: `${settings.prefix}.${delayLabel(delayMs)}.v1` }));
  }

  /** The shortest tier with a delay: where a slow endpoint's overflow waits (and the least a postponed task waits). */
  get shortest(): Tier {
    return this.tiers.find((t) => t.delayMs > 0)!;
  }

  get topics(): string[] {
    return this.tiers.map((t) => t.topic);
  }

  byTopic(topic: string): Tier | undefined {
    return this.tiers.find((t) => t.topic === topic);
  }

  /** Longest a record of this tier can legitimately wait from production to due. */
  maxWaitMs(tier: Tier): number {
    return Math.ceil(tier.delayMs * (1 + this.jitter)) + 1;
  }

  /**
   * The first tier whose longest jittered wait covers `waitMs` (a Retry-After of 90 s goes to the
   * 5 m tier: at or above, never below), or the largest tier when none does (the record then
   * hops: see `hopsFrom`).
   */
  forWait(waitMs: number): Tier {
    if (waitMs <= 0) return this.tiers[0]!;
    return this.tiers.find((t) => t.delayMs > 0 && this.maxWaitMs(t) >= waitMs) ?? this.tiers[this.tiers.length - 1]!;
  }

  /**
   * A record met at the head of `tier` that is due later than the tier can wait: it would hold
   * every record behind it, so it is produced again to the tier that fits what is left.
   */
  hopsFrom(tier: Tier, waitLeftMs: number): boolean {
    return waitLeftMs > this.maxWaitMs(tier) + 1_000;
  }

  topicSpecs(): TopicSpec[] {
    return this.tiers.map((t) => ({
      name: t.topic,
      partitions: this.settings.partitions,
      configs: { 'retention.ms': String(t.delayMs * 2 + this.settings.retentionMarginMs) },
    }));
  }
}

// When a failed call may be sent again. Policy is data plus one small function; the call loop in
// client.ts only asks `retryDelay(...)`.
//
// What is retried (and nothing else):
//   UNAVAILABLE        every method: the service was not reached, or said "try again"
//                      (service-kit answers UNAVAILABLE when its database or broker is down).
//   DEADLINE_EXCEEDED  only methods marked NO_SIDE_EFFECTS or IDEMPOTENT in the proto: the
//                      first attempt may have taken effect, so only calls safe to repeat.
// Methods whose repeat would do something twice carry a guard (see `RETRY_GUARDS`): PublishEvent
// is never retried without an idempotency key, CreateEndpoint never without a request_id.
import { status } from '@grpc/grpc-js';
import type { Safety } from './safety';

export interface RetryPolicy {
  /** Attempts in total, the first included. @default 3 */
  maxAttempts: number;
  /** Delay before the second attempt. @default 100 ms */
  initialBackoffMs: number;
  /** Each later delay is the previous one times this. @default 2 */
  multiplier: number;
  /** No delay is longer than this. @default 2000 ms */
  maxBackoffMs: number;
  /** ± this fraction of random jitter on each delay, so many clients do not retry in step. @default 0.2 */
  jitter: number;
}

/** 3 attempts: immediately, after ~100 ms, after ~200 ms. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 3, initialBackoffMs: 100, multiplier: 2, maxBackoffMs: 2_000, jitter: 0.2 };

/** No retries at all. */
export const NO_RETRY: RetryPolicy = { ...DEFAULT_RETRY_POLICY, maxAttempts: 1 };

/** Delay before attempt `attempt + 1` after `attempt` attempts failed (attempt ≥ 1). */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (attempt - 1));
  const spread = base * policy.jitter;
  return Math.max(0, Math.round(base - spread + 2 * spread * random()));
}

/** True when a failure with `code` may be retried for a method of this safety level. */
export function isRetryableCode(code: number, safety: Safety): boolean {
  if (code === status.UNAVAILABLE) return true;
  if (code === status.DEADLINE_EXCEEDED) return safety === 'NO_SIDE_EFFECTS' || safety === 'IDEMPOTENT';
  return false;
}

/** Per-method conditions without which a call is never retried: repeating it could act twice. */
export const RETRY_GUARDS: Readonly<Record<string, (request: unknown) => boolean>> = {
  // A second PublishEvent without a key would publish the event twice.
  '/webhooks.events.v1.EventIngestService/PublishEvent': (req) => hasText((req as { event?: { idempotencyKey?: string } }).event?.idempotencyKey),
  '/webhooks.events.v1.EventIngestService/PublishEvents': (req) => {
    const events = (req as { events?: { idempotencyKey?: string }[] }).events ?? [];
    return events.length > 0 && events.every((e) => hasText(e.idempotencyKey));
  },
  // A second CreateEndpoint without a request_id would create a second endpoint.
  '/webhooks.endpoints.v1.EndpointRegistryService/CreateEndpoint': (req) => hasText((req as { requestId?: string }).requestId),
};

const hasText = (s: string | undefined): boolean => typeof s === 'string' && s.length > 0;

export interface RetryQuestion {
  method: string;
  safety: Safety;
  request: unknown;
  code: number;
  /** Attempts made so far, the failed one included. */
  attempt: number;
  /** Milliseconds left until the call's overall deadline. */
  remainingMs: number;
}

/**
 * The one decision: how long to wait before trying again, or null to give up. Gives up when the
 * code is not retryable for this method, a guard says no, attempts are used up, or the wait
 * would not leave time for another attempt before the deadline.
 */
export function retryDelay(policy: RetryPolicy, q: RetryQuestion, random: () => number = Math.random): number | null {
  if (q.attempt >= policy.maxAttempts) return null;
  if (!isRetryableCode(q.code, q.safety)) return null;
  const guard = RETRY_GUARDS[q.method];
  if (guard && !guard(q.request)) return null;
  const delay = backoffDelay(policy, q.attempt, random);
  if (delay >= q.remainingMs) return null;
  return delay;
}

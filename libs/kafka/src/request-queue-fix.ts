// kafkajs 2.2.4 (its last release) re-arms a timer on every broker connection once a
// millisecond for as long as the process lives: after each response it schedules a check of the
// pending requests at `throttledUntil - Date.now()`, which is about minus the epoch when nothing
// is throttled (Node runs it after 1 ms, warning TimeoutNegativeWarning once), and each check
// schedules the next (kafkajs issues 1704 and 1751, fix proposed in pull request 1768, unmerged).
// Measured here: an idle process with a producer and three consumers spent 2.0 % of a core,
// 0.6 % with this fix. The fix schedules a check only when a request is pending or the broker
// throttles us; a request pushed later checks for itself (RequestQueue.push).
import { createRequire } from 'node:module';

/** The parts of kafkajs's RequestQueue the fix reads and sets. */
interface RequestQueueState {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs's own interval for re-checking pending requests (requestQueue/index.js). */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

function scheduleCheckPendingRequests(this: RequestQueueState): void {
  if (this.throttleCheckTimeoutId) return;
  const untilUnthrottled = this.throttledUntil - Date.now();
  let delay: number;
  if (this.pending.length > 0) delay = untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_REQUESTS_INTERVAL_MS;
  else if (untilUnthrottled > 0) delay = untilUnthrottled;
  else return;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, delay);
}

/**
 * kafkajs's RequestQueue class, with the fix applied (once; idempotent). Returns undefined, and
 * changes nothing, if kafkajs no longer has that class where 2.2.4 has it.
 */
export function fixRequestQueue(): { prototype: RequestQueueState } | undefined {
  let RequestQueue: { prototype: RequestQueueState } | undefined;
  try {
    RequestQueue = createRequire(require.resolve('kafkajs'))('./src/network/requestQueue');
  } catch {
    return undefined;
  }
  if (typeof RequestQueue?.prototype?.scheduleCheckPendingRequests !== 'function') return undefined;
  RequestQueue.prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
  return RequestQueue;
}

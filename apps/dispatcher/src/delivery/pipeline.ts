// One delivery attempt in named stages: prepare (sign, headers) → attempt (HTTP) → decide →
// record (attempt log, final outcome, endpoint health) → schedule (the retry, on a tier topic).
// `decide` is the one place that turns an attempt's result into succeed / retry / fail.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Context, type Link } from '@opentelemetry/api';
import { signature256, standardSignatureHeader } from '@hookline/signing';
import { timeOrderedId, unredacted, type Logger } from '@hookline/service-kit';
import { tracer, withSpan } from '@hookline/telemetry';
import { NO_DELIVERY_METRICS, type DeliveryMetrics } from '../metrics';
import { webhookBody } from '@hookline/schemas';
import type { HttpAttempter, HttpRequest, HttpResult } from './http-attempt';
import { parseRetryAfter, type RetryPolicy } from './retry-policy';
import type { AttemptDoc, DispatcherModels } from '../store/models';
import { OutcomeWriter, type OutcomeRecord, type Recorded } from '../store/outcome-writer';
import type { Subscriber, SubscriberSource } from '../subscribers/subscriber-cache';
import type { OperationalEvents } from '../operations/operational-events';
import { deliveryIdOf, type EventData, type Task, type Waiting } from '../retry/tasks';

export type { EventData } from '../retry/tasks';

export const USER_AGENT = 'Hookline-Webhooks/0.1';

export type AttemptResult = { kind: 'delivered' } | { kind: 'failed'; retryable: boolean; reason: string; retryAfterMs?: number; gone?: boolean };

export type Decision =
  | { kind: 'succeeded' }
  /** `retryAfter`: the endpoint asked for the delay (Retry-After); it is honoured even if the endpoint answers sooner. */
  | { kind: 'retry'; at: Date; reason: string; retryAfter?: true }
  | { kind: 'failed'; reason: string; disableEndpoint?: 'gone' };

/** What the pipeline needs from the registry besides subscribers. */
export interface EndpointControl {
  disable(workspaceId: string, endpointId: string, reason: 'gone' | 'failing'): Promise<void>;
}

/** Builds the exact request: body bytes, then signatures over those bytes. */
export function prepare(event: EventData, sub: Subscriber, nowMs: number): HttpRequest {
  const body = webhookBody({ id: event.id, type: event.type, createdAt: event.createdAt, payload: event.payload });
  const timestamp = Math.floor(nowMs / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    'x-webhook-id': event.id,
    'x-webhook-event': event.type,
    'x-webhook-timestamp': String(timestamp),
    // The newest secret signs X-Signature-256 (one value fits the product's receiver snippet);
    // during a rotation grace period Standard Webhooks headers carry every active secret.
    'x-signature-256': signature256(body, sub.secrets[0] ?? ''),
  };
  if (sub.standardWebhooks) {
    headers['webhook-id'] = event.id;
    headers['webhook-timestamp'] = String(timestamp);
    headers['webhook-signature'] = standardSignatureHeader({ id: event.id, timestamp, body }, sub.secrets);
  }
  return { url: sub.url, headers, body };
}

/** 2xx is success; 3xx is failure (never followed); 410 means "stop sending". */
export function classify(result: HttpResult, nowMs: number): AttemptResult {
  if (result.kind === 'error') return { kind: 'failed', retryable: true, reason: result.error };
  const s = result.status;
  if (s >= 200 && s < 300) return { kind: 'delivered' };
  if (s === 410) return { kind: 'failed', retryable: false, gone: true, reason: 'endpoint answered 410 Gone' };
  const retryAfterMs = s === 429 || s === 503 ? parseRetryAfter(result.headers['retry-after'], nowMs) : undefined;
  const reason = s >= 300 && s < 400 ? `redirect ${s} not followed` : `endpoint answered ${s}`;
  return retryAfterMs === undefined ? { kind: 'failed', retryable: true, reason } : { kind: 'failed', retryable: true, reason, retryAfterMs };
}

export function decide(result: AttemptResult, attemptsMade: number, policy: RetryPolicy, nowMs: number): Decision {
  if (result.kind === 'delivered') return { kind: 'succeeded' };
  if (result.gone) return { kind: 'failed', reason: result.reason, disableEndpoint: 'gone' };
  const delay = result.retryable ? policy.nextDelay(attemptsMade, result.retryAfterMs) : null;
  if (delay === null) return { kind: 'failed', reason: `${result.reason}; no retries left after ${attemptsMade} attempts` };
  return { kind: 'retry', at: new Date(nowMs + delay), reason: result.reason, ...(result.retryAfterMs !== undefined ? { retryAfter: true as const } : {}) };
}

export function attemptDoc(
  base: { workspaceId: string; endpointId: string; eventId: string; eventType: string; eventCreatedAt: Date; kind: 'live' | 'test'; attemptNumber: number; url: string; nextAttemptAt?: Date | null },
  req: HttpRequest,
  result: HttpResult,
  succeeded: boolean,
  startedAt: Date,
  retentionMs: number,
): AttemptDoc {
  const common = {
    _id: timeOrderedId('att', startedAt.getTime()),
    ...base,
    deliveryId: `${base.eventId}|${base.endpointId}`,
    nextAttemptAt: base.nextAttemptAt ?? null,
    outcome: succeeded ? ('succeeded' as const) : ('failed' as const),
    requestHeaders: req.headers,
    resolvedIp: result.resolvedIp,
    durationMs: result.durationMs,
    createdAt: startedAt,
    expiresAt: new Date(startedAt.getTime() + retentionMs),
  };
  if (result.kind === 'error') return { ...common, responseStatus: 0, responseHeaders: {}, responseBody: '', responseBodyTruncated: false, error: result.error };
  return { ...common, responseStatus: result.status, responseHeaders: result.headers, responseBody: result.body, responseBodyTruncated: result.bodyTruncated, error: '' };
}

export interface PipelineDeps {
  models: Pick<DispatcherModels, 'attempts' | 'delivered' | 'health'>;
  http: HttpAttempter;
  subscribers: SubscriberSource;
  policy: RetryPolicy;
  control: EndpointControl;
  ops: OperationalEvents;
  /** Where the next attempt of a delivery waits (the retry tiers). */
  waiting: Waiting;
  writer: OutcomeWriter;
  retentionMs: number;
  autoDisableAfterMs: number;
  log: Logger;
  now?: () => number;
  metrics?: DeliveryMetrics;
}

/** Where an attempt's span belongs: under the intake that queued it, or a new trace linked to the original. */
export interface AttemptTrace {
  parent?: Context;
  links?: Link[];
}

/** What an attempt left to record; `record()` moves it forward and may be called again after it threw. */
export interface Attempted {
  task: Task;
  decision: Decision | { kind: 'skipped'; reason: string };
  outcome: OutcomeRecord;
  /** The retry to schedule, if the decision is to retry. */
  next?: Task;
  /** Steps already done, so a record() that threw half-way does not redo them. */
  done: { recorded?: Recorded; scheduled?: boolean; endpoint?: boolean };
}

/** An endpoint's failure streak as this replica last read or wrote it. */
interface Streak {
  since: Date;
  checkedAt: number;
}

/** How long a failure streak read from the database is trusted before it is read again. */
const STREAK_REFRESH_MS = 30_000;

export class DeliveryPipeline {
  private readonly now: () => number;
  private readonly metrics: DeliveryMetrics;
  private readonly streaks = new Map<string, Streak>();
  /** The line per attempt: ids, numbers and our own reason words only, so no redaction pass (logger.ts). */
  private readonly attemptLog: Logger;
  constructor(private readonly d: PipelineDeps) {
    this.now = d.now ?? Date.now;
    this.attemptLog = unredacted(d.log);
    this.metrics = d.metrics ?? NO_DELIVERY_METRICS;
  }

  /**
   * Stages prepare → attempt → decide for one task. `attempted` is called once the HTTP exchange
   * is over (the endpoint's slot is free), before anything is written. Throws only when the
   * registry cannot say who the subscribers are (nothing was sent then).
   */
  attempt(task: Task, t: AttemptTrace = {}, attempted?: () => void): Promise<Attempted> {
    // A retry (links, no parent) starts its own trace, linked to the intake's.
    const retry = !t.parent && t.links !== undefined;
    return withSpan(
      'webhook.deliver',
      {
        ...(t.parent ? { parent: t.parent } : retry ? { parent: ROOT_CONTEXT, root: true, links: t.links } : {}),
        attributes: { 'hookline.event_id': task.event.id, 'hookline.event_type': task.event.type, 'hookline.workspace_id': task.event.workspaceId, 'hookline.endpoint_id': task.endpointId, 'hookline.attempt': task.attemptsMade + 1 },
      },
      async (span) => {
        const a = await this.attemptIn(task, attempted);
        span.setAttribute('hookline.outcome', a.decision.kind);
        return a;
      },
    );
  }

  private async attemptIn(task: Task, attempted?: () => void): Promise<Attempted> {
    const deliveryId = deliveryIdOf(task);
    const { event } = task;
    // A success after this task's attempts means it was attempted meanwhile (a success not after
    // them is what RetryDelivery sends again). Tier intake checks whole chunks; this is for tasks
    // whose check there could not be made.
    if (task.verify && ((await this.d.models.delivered.of(event.createdAt).findOne({ _id: deliveryId }, { attemptCount: 1 }).lean<{ attemptCount: number }>())?.attemptCount ?? 0) > task.attemptsMade) {
      attempted?.();
      return { task, decision: { kind: 'skipped', reason: 'delivered already' }, outcome: {}, done: {} };
    }
    const subs = await this.d.subscribers.resolve(event.workspaceId, event.type);
    const sub = subs.find((s) => s.endpointId === task.endpointId);
    const nowMs = this.now();
    if (!sub) {
      attempted?.();
      // Deleted, disabled or unsubscribed since the event arrived: nothing to send to.
      const decision: Decision = { kind: 'failed', reason: 'endpoint deleted, disabled or no longer subscribed' };
      return { task, decision, outcome: { failed: this.failedDoc(task, decision.reason, task.attemptsMade, nowMs) }, done: {} };
    }
    const startedAt = new Date(nowMs);
    const signSpan = tracer().startSpan('webhook.sign', { attributes: { 'hookline.secrets': sub.secrets.length, 'hookline.standard_webhooks': sub.standardWebhooks } });
    const req = prepare(event, sub, startedAt.getTime());
    signSpan.end();
    const attemptNumber = task.attemptsMade + 1;
    const result = await attemptSpan(req, attemptNumber, () => this.d.http.send(req));
    attempted?.();
    const endMs = this.now();
    const decision = decide(classify(result, endMs), attemptNumber, this.d.policy, endMs);
    this.metrics.attempt(decision.kind, result.kind === 'response' ? result.status : undefined, result.durationMs);
    if (decision.kind === 'succeeded') this.metrics.delivered(endMs - event.createdAt.getTime());
    else if (decision.kind === 'retry') this.metrics.retryScheduled();
    const succeeded = decision.kind === 'succeeded';
    const attempt = attemptDoc(
      { workspaceId: event.workspaceId, endpointId: task.endpointId, eventId: event.id, eventType: event.type, eventCreatedAt: event.createdAt, kind: 'live', attemptNumber, url: sub.url, nextAttemptAt: decision.kind === 'retry' ? decision.at : null },
      req,
      result,
      succeeded,
      startedAt,
      this.d.retentionMs,
    );
    const outcome: OutcomeRecord = { attempt };
    if (succeeded) {
      outcome.delivered = { _id: deliveryId, eventCreatedAt: event.createdAt, attemptCount: attemptNumber, deliveredAt: new Date(endMs) };
      outcome.healthyEndpoint = { id: `${event.workspaceId}|${task.endpointId}`, workspaceId: event.workspaceId, endpointId: task.endpointId };
    } else if (decision.kind === 'failed') {
      outcome.failed = this.failedDoc(task, decision.reason, attemptNumber, endMs);
    }
    this.attemptLog.info(
      { eventId: event.id, endpointId: task.endpointId, attempt: attemptNumber, outcome: decision.kind, status: result.kind === 'response' ? result.status : 0, ms: result.durationMs, reason: 'reason' in decision ? decision.reason : undefined },
      'delivery attempt',
    );
    const next = decision.kind === 'retry' ? { ...task, attemptsMade: attemptNumber, dueAt: decision.at.getTime(), verify: false } : undefined;
    return { task, decision, outcome, ...(next ? { next } : {}), done: {} };
  }

  /** Whether the attempt recorded first with this delivery and attempt number planned a retry (or cannot be found). */
  private async otherChainPlannedRetry(a: Attempted): Promise<boolean> {
    const mine = a.outcome.attempt!;
    const theirs = await this.d.models.attempts.of(mine.eventCreatedAt).findOne({ deliveryId: mine.deliveryId, attemptNumber: mine.attemptNumber }, { outcome: 1, nextAttemptAt: 1 }).lean<Pick<AttemptDoc, 'outcome' | 'nextAttemptAt'>>();
    return !theirs || (theirs.outcome === 'failed' && theirs.nextAttemptAt !== null);
  }

  private failedDoc(task: Task, reason: string, attemptCount: number, nowMs: number) {
    const deliveryId = deliveryIdOf(task);
    const { event } = task;
    return { _id: `${deliveryId}|${attemptCount}`, deliveryId, eventId: event.id, workspaceId: event.workspaceId, endpointId: task.endpointId, eventType: event.type, eventCreatedAt: event.createdAt, attemptCount, reason, failedAt: new Date(nowMs), expiresAt: new Date(nowMs + this.d.retentionMs) };
  }

  /**
   * Stages record → schedule: the attempt and the delivery's final outcome are inserted, the retry
   * (if any) is produced to its tier, and the endpoint's health and failure streak are updated.
   * Resolves once all of it is durable; throws on a storage or broker fault, and may then be called
   * again with the same `a` (steps done are not redone).
   */
  async record(a: Attempted): Promise<void> {
    if (a.decision.kind === 'skipped') return;
    a.done.recorded ??= await this.d.writer.record(a.outcome);
    // This attempt number was recorded already: by another chain of this delivery (a record read
    // again after a crash or a rebalance), or by this one before a transient error. That chain
    // goes on alone when its attempt ended the delivery. When its attempt planned a retry, that
    // retry may never have been produced (the replica died between recording and producing it:
    // the soak lost 5 deliveries so), so this chain goes on too; at worst the next attempts are
    // made twice.
    if (a.next && !a.done.scheduled && (a.done.recorded.attemptNew || (await this.otherChainPlannedRetry(a)))) {
      await this.d.waiting.wait([a.next]);
      a.done.scheduled = true;
    }
    if (a.done.endpoint) return;
    const { workspaceId } = a.task.event;
    const endpointId = a.task.endpointId;
    if (a.decision.kind === 'failed' && a.decision.disableEndpoint) {
      await this.d.control.disable(workspaceId, endpointId, a.decision.disableEndpoint);
      this.metrics.endpointDisabled(a.decision.disableEndpoint);
      await this.d.ops.endpointDisabled({ workspaceId, endpointId, reason: a.decision.disableEndpoint, at: new Date(this.now()) });
    } else if (a.decision.kind === 'succeeded') {
      this.streaks.delete(`${workspaceId}|${endpointId}`);
    } else if (a.outcome.attempt) {
      await this.recordFailureStreak(workspaceId, endpointId);
    }
    a.done.endpoint = true;
  }

  /**
   * Tracks failure streaks; disables an endpoint failing with no success for autoDisableAfterMs.
   * The streak's start is read (or opened) once and trusted for STREAK_REFRESH_MS, so a failure
   * storm costs no write per failure. The streak is closed with a conditional write, so of many
   * failures (and replicas) crossing the line together one disables the endpoint and announces it;
   * the next streak (should the owner re-enable the endpoint) starts from the next failure.
   */
  private async recordFailureStreak(workspaceId: string, endpointId: string): Promise<void> {
    const _id = `${workspaceId}|${endpointId}`;
    const nowMs = this.now();
    const now = new Date(nowMs);
    let streak = this.streaks.get(_id);
    // Read again before acting on a cached streak: another replica may have closed it with a success.
    const crossing = streak !== undefined && nowMs - streak.since.getTime() >= this.d.autoDisableAfterMs;
    if (!streak || crossing || nowMs - streak.checkedAt > STREAK_REFRESH_MS) {
      this.d.writer.forgetHealthy(_id);
      const doc = await this.d.models.health
        .findOneAndUpdate({ _id }, { $setOnInsert: { workspaceId, endpointId, lastSuccessAt: null, failingSince: now } }, { upsert: true, new: true })
        .lean();
      let since = doc?.failingSince ?? null;
      if (!since) {
        await this.d.models.health.updateOne({ _id, failingSince: null }, { $set: { failingSince: now } });
        since = now;
      }
      this.streaks.set(_id, (streak = { since, checkedAt: nowMs }));
    }
    if (nowMs - streak.since.getTime() < this.d.autoDisableAfterMs) return;
    // Registry first: if it is unavailable this throws, the streak stays open and the next failure tries again.
    await this.d.control.disable(workspaceId, endpointId, 'failing');
    const closed = await this.d.models.health.updateOne({ _id, failingSince: streak.since }, { $set: { failingSince: null, disabledAt: now } });
    this.streaks.delete(_id);
    if (closed.modifiedCount === 1) {
      this.metrics.endpointDisabled('failing');
      await this.d.ops.endpointDisabled({ workspaceId, endpointId, reason: 'failing', failingSince: streak.since, at: now });
    }
  }
}

/**
 * The HTTP attempt as a client span: method, target host and port (never the full URL: customers
 * put tokens in paths and queries), the vetted address, the status code or the error. Our own
 * span, not undici's instrumentation, which would send `traceparent` to customers' endpoints.
 */
function attemptSpan(req: HttpRequest, attempt: number, send: () => Promise<HttpResult>): Promise<HttpResult> {
  let host = '';
  let port = 443;
  try {
    const u = new URL(req.url);
    host = u.hostname;
    port = u.port ? Number(u.port) : u.protocol === 'http:' ? 80 : 443;
  } catch {
    // An unparsable URL fails inside send() with its own reason.
  }
  return withSpan('webhook.attempt', { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'POST', 'server.address': host, 'server.port': port, 'hookline.attempt': attempt, 'http.request.body.size': req.body.length } }, async (span) => {
    const result = await send();
    if (result.resolvedIp) span.setAttribute('network.peer.address', result.resolvedIp);
    if (result.kind === 'response') {
      span.setAttribute('http.response.status_code', result.status);
      if (result.status < 200 || result.status >= 300) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${result.status}` });
    } else {
      span.setAttribute('error.type', result.refused ? 'refused' : 'request_failed');
      span.setStatus({ code: SpanStatusCode.ERROR, message: result.error });
    }
    return result;
  });
}

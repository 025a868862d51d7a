// One delivery attempt in named stages: prepare (sign, headers) → attempt (HTTP) → record
// (attempt log, delivery state, endpoint health). `decide` is the one place that turns an
// attempt's result into succeed / retry / fail.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Context, type Link } from '@opentelemetry/api';
import { signature256, standardSignatureHeader } from '@hookline/signing';
import { timeOrderedId, type Logger } from '@hookline/service-kit';
import { tracer, withSpan } from '@hookline/telemetry';
import { NO_DELIVERY_METRICS, type DeliveryMetrics } from '../metrics';
import { webhookBody } from '@hookline/schemas';
import type { HttpAttempter, HttpRequest, HttpResult } from './http-attempt';
import { parseRetryAfter, type RetryPolicy } from './retry-policy';
import type { AttemptDoc, DeliveryDoc, DispatcherModels } from '../store/models';
import { OutcomeWriter, type DeliveryOutcome, type DeliveryTrack } from '../store/outcome-writer';
import type { Subscriber, SubscriberSource } from '../subscribers/subscriber-cache';
import type { OperationalEvents } from '../operations/operational-events';

export const USER_AGENT = 'Hookline-Webhooks/0.1';

export interface EventData {
  id: string;
  workspaceId: string;
  type: string;
  createdAt: Date;
  payload: Buffer;
}

export type AttemptResult = { kind: 'delivered' } | { kind: 'failed'; retryable: boolean; reason: string; retryAfterMs?: number; gone?: boolean };

export type Decision =
  | { kind: 'succeeded' }
  | { kind: 'retry'; at: Date; reason: string }
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
  return { kind: 'retry', at: new Date(nowMs + delay), reason: result.reason };
}

export function attemptDoc(
  base: { workspaceId: string; endpointId: string; eventId: string; eventType: string; kind: 'live' | 'test'; attemptNumber: number; url: string },
  req: HttpRequest,
  result: HttpResult,
  succeeded: boolean,
  startedAt: Date,
  retentionMs: number,
): AttemptDoc {
  const common = {
    _id: timeOrderedId('att', startedAt.getTime()),
    ...base,
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
  models: DispatcherModels;
  http: HttpAttempter;
  subscribers: SubscriberSource;
  policy: RetryPolicy;
  control: EndpointControl;
  ops: OperationalEvents;
  owner: string;
  retentionMs: number;
  autoDisableAfterMs: number;
  log: Logger;
  now?: () => number;
  metrics?: DeliveryMetrics;
  /** Groups outcome writes; defaults to one over `models`. */
  writer?: OutcomeWriter;
}

/** Where an attempt's span belongs: under the intake that queued it, or a new trace linked to the original. */
export interface AttemptTrace {
  parent?: Context;
  links?: Link[];
}

export class DeliveryPipeline {
  private readonly now: () => number;
  private readonly metrics: DeliveryMetrics;
  private readonly writer: OutcomeWriter;
  constructor(private readonly d: PipelineDeps) {
    this.now = d.now ?? Date.now;
    this.metrics = d.metrics ?? NO_DELIVERY_METRICS;
    this.writer = d.writer ?? new OutcomeWriter(d.models, this.now);
  }

  /**
   * Runs one attempt of a delivery and records its outcome. The delivery is either a leased
   * document or, with `track`, held in memory only (then its outcome is inserted unless
   * the track says it has been recorded since). Throws only on storage faults.
   */
  run(delivery: DeliveryDoc, event: EventData, t: AttemptTrace = {}, track?: DeliveryTrack, attempted?: () => void): Promise<Decision> {
    // A retry from the scheduler (links, no parent) starts its own trace, linked to the intake's.
    const retry = !t.parent && t.links !== undefined;
    return withSpan(
      'webhook.deliver',
      {
        ...(t.parent ? { parent: t.parent } : retry ? { parent: ROOT_CONTEXT, root: true, links: t.links } : {}),
        attributes: { 'hookline.event_id': event.id, 'hookline.event_type': event.type, 'hookline.workspace_id': delivery.workspaceId, 'hookline.endpoint_id': delivery.endpointId, 'hookline.attempt': delivery.attemptCount + 1 },
      },
      async (span) => {
        const decision = await this.deliver(delivery, event, track ? { doc: delivery, track } : undefined, attempted);
        span.setAttribute('hookline.outcome', decision.kind);
        return decision;
      },
    );
  }

  /** `attempted` is called once the HTTP exchange is over (the endpoint's slot is free), before the outcome is written. */
  private async deliver(delivery: DeliveryDoc, event: EventData, fresh: DeliveryOutcome['fresh'], attempted?: () => void): Promise<Decision> {
    const subs = await this.d.subscribers.resolve(delivery.workspaceId, delivery.eventType);
    const sub = subs.find((s) => s.endpointId === delivery.endpointId);
    if (!sub) {
      // Deleted, disabled or unsubscribed since the event arrived: nothing to send to.
      const decision: Decision = { kind: 'failed', reason: 'endpoint deleted, disabled or no longer subscribed' };
      await this.writer.record({ deliveryId: delivery._id, owner: this.d.owner, set: deliverySet(decision, delivery.attemptCount), ...(fresh ? { fresh } : {}) });
      return decision;
    }
    const startedAt = new Date(this.now());
    const signSpan = tracer().startSpan('webhook.sign', { attributes: { 'hookline.secrets': sub.secrets.length, 'hookline.standard_webhooks': sub.standardWebhooks } });
    const req = prepare(event, sub, startedAt.getTime());
    signSpan.end();
    const attemptsMade = delivery.attemptCount + 1;
    const result = await attemptSpan(req, attemptsMade, () => this.d.http.send(req));
    attempted?.();
    const decision = decide(classify(result, this.now()), attemptsMade, this.d.policy, this.now());
    const status = result.kind === 'response' ? result.status : undefined;
    this.metrics.attempt(decision.kind, status, result.durationMs);
    if (decision.kind === 'succeeded') this.metrics.delivered(this.now() - event.createdAt.getTime());
    else if (decision.kind === 'retry') this.metrics.retryScheduled();
    const base = { workspaceId: delivery.workspaceId, endpointId: delivery.endpointId, eventId: event.id, eventType: event.type, kind: 'live' as const, attemptNumber: attemptsMade, url: sub.url };
    const succeeded = decision.kind === 'succeeded';
    await this.writer.record({
      deliveryId: delivery._id,
      owner: this.d.owner,
      attempt: attemptDoc(base, req, result, succeeded, startedAt, this.d.retentionMs),
      set: deliverySet(decision, attemptsMade),
      ...(succeeded ? { healthyEndpoint: { id: `${delivery.workspaceId}|${delivery.endpointId}`, workspaceId: delivery.workspaceId, endpointId: delivery.endpointId } } : {}),
      ...(fresh ? { fresh } : {}),
    });
    if (decision.kind === 'failed' && decision.disableEndpoint) {
      await this.d.control.disable(delivery.workspaceId, delivery.endpointId, decision.disableEndpoint);
      this.metrics.endpointDisabled(decision.disableEndpoint);
      await this.d.ops.endpointDisabled({ workspaceId: delivery.workspaceId, endpointId: delivery.endpointId, reason: decision.disableEndpoint, at: new Date(this.now()) });
    } else if (!succeeded) {
      await this.recordFailureStreak(delivery);
    }
    this.d.log.info(
      { eventId: event.id, endpointId: delivery.endpointId, attempt: attemptsMade, outcome: decision.kind, status: result.kind === 'response' ? result.status : 0, ms: result.durationMs, reason: 'reason' in decision ? decision.reason : undefined },
      'delivery attempt',
    );
    return decision;
  }

  /**
   * Tracks failure streaks; disables an endpoint failing with no success for autoDisableAfterMs.
   * The streak is closed with a conditional write, so of many failures (and replicas) crossing the
   * line together exactly one disables the endpoint and announces it; the next streak (should the
   * owner re-enable the endpoint) starts from the next failure.
   */
  private async recordFailureStreak(delivery: DeliveryDoc): Promise<void> {
    const _id = `${delivery.workspaceId}|${delivery.endpointId}`;
    this.writer.forgetHealthy(_id);
    const now = new Date(this.now());
    const doc = await this.d.models.health
      .findOneAndUpdate({ _id }, { $setOnInsert: { workspaceId: delivery.workspaceId, endpointId: delivery.endpointId, lastSuccessAt: null, failingSince: now } }, { upsert: true, new: true })
      .lean();
    const since = doc?.failingSince ?? null;
    if (!since) {
      await this.d.models.health.updateOne({ _id, failingSince: null }, { $set: { failingSince: now } });
      return;
    }
    if (now.getTime() - since.getTime() < this.d.autoDisableAfterMs) return;
    // Registry first: if it is unavailable this throws, the streak stays open and the next failure tries again.
    await this.d.control.disable(delivery.workspaceId, delivery.endpointId, 'failing');
    const closed = await this.d.models.health.updateOne({ _id, failingSince: since }, { $set: { failingSince: null, disabledAt: now } });
    if (closed.modifiedCount === 1) {
      this.metrics.endpointDisabled('failing');
      await this.d.ops.endpointDisabled({ workspaceId: delivery.workspaceId, endpointId: delivery.endpointId, reason: 'failing', failingSince: since, at: now });
    }
  }
}

/** The delivery's new state after a decision (the writer adds the lease release). */
export function deliverySet(decision: Decision, attemptCount: number): DeliveryOutcome['set'] {
  if (decision.kind === 'retry') return { state: 'pending', nextAttemptAt: decision.at, lastError: decision.reason, attemptCount };
  if (decision.kind === 'succeeded') return { state: 'succeeded', nextAttemptAt: null, lastError: '', attemptCount };
  return { state: 'failed', nextAttemptAt: null, lastError: decision.reason, attemptCount };
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

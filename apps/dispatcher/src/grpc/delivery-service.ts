// DeliveryService: test sends, the attempt log, manual retry and recovery.
import { deliveryV1 } from '@hookline/proto';
import { notFound, timeOrderedId, Violations, type AsyncService } from '@hookline/service-kit';
import { eventTypeProblem, workspaceIdProblem } from '@hookline/schemas';
import { payloadBytes, type AttemptDoc, type DispatcherModels, type EventDoc, type FailedDoc } from '../store/models';
import type { HttpAttempter } from '../delivery/http-attempt';
import { attemptDoc, prepare } from '../delivery/pipeline';
import type { SubscriberSource } from '../subscribers/subscriber-cache';
import type { Task, Waiting } from '../retry/tasks';

export interface ExampleSource {
  /** The catalog example for an event type; undefined when the type does not exist. */
  example(eventType: string): Promise<string | undefined>;
}

export interface DeliveryServiceDeps {
  models: DispatcherModels;
  http: HttpAttempter;
  subscribers: SubscriberSource;
  examples: ExampleSource;
  /** Where manual retries and recovered deliveries wait for their attempt (the shortest retry tier, due now). */
  waiting: Waiting;
  retentionMs: number;
}

const MAX_PAGE = 500;
const MAX_RECOVER_MS = 14 * 24 * 3600 * 1000;

const KIND = { live: deliveryV1.AttemptKind.ATTEMPT_KIND_LIVE, test: deliveryV1.AttemptKind.ATTEMPT_KIND_TEST } as const;
const OUTCOME = { succeeded: deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED, failed: deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_FAILED } as const;
const STATE = { pending: deliveryV1.DeliveryState.DELIVERY_STATE_PENDING, succeeded: deliveryV1.DeliveryState.DELIVERY_STATE_SUCCEEDED, failed: deliveryV1.DeliveryState.DELIVERY_STATE_FAILED } as const;

export function toAttempt(a: AttemptDoc): deliveryV1.Attempt {
  return {
    id: a._id,
    workspaceId: a.workspaceId,
    endpointId: a.endpointId,
    eventId: a.eventId,
    eventType: a.eventType,
    kind: KIND[a.kind],
    outcome: OUTCOME[a.outcome],
    attemptNumber: a.attemptNumber,
    url: a.url,
    resolvedIp: a.resolvedIp,
    requestHeaders: a.requestHeaders,
    responseStatus: a.responseStatus,
    responseHeaders: a.responseHeaders,
    responseBody: a.responseBody,
    responseBodyTruncated: a.responseBodyTruncated,
    duration: { seconds: String(Math.floor(a.durationMs / 1000)), nanos: (a.durationMs % 1000) * 1e6 },
    error: a.error,
    createTime: a.createdAt,
    nextAttemptTime: a.nextAttemptAt ?? undefined,
  };
}

function scope(v: Violations, workspaceId: string, endpointId: string): void {
  const p = workspaceIdProblem(workspaceId);
  if (p) v.add('workspace_id', p);
  if (!endpointId) v.add('endpoint_id', 'is required');
}

const eventData = (e: EventDoc) => ({ id: e._id, workspaceId: e.workspaceId, type: e.eventType, createdAt: e.createdAt, payload: payloadBytes(e.payload) });

/**
 * Attempts made of one delivery so far, from its latest attempt or outcome; undefined when the
 * delivery is unknown (never attempted, or expired).
 */
async function attemptsMade(models: DispatcherModels, workspaceId: string, endpointId: string, eventId: string): Promise<number | undefined> {
  const id = `${eventId}|${endpointId}`;
  const [latest, done, failed] = await Promise.all([
    models.attempts.findOne({ workspaceId, endpointId, eventId, kind: 'live' }, { attemptNumber: 1 }).sort({ _id: -1 }).lean<Pick<AttemptDoc, 'attemptNumber'>>(),
    models.delivered.findOne({ _id: id, workspaceId }, { attemptCount: 1 }).lean<{ attemptCount: number }>(),
    models.failed.findOne({ deliveryId: id, workspaceId }, { attemptCount: 1 }).sort({ attemptCount: -1 }).lean<Pick<FailedDoc, 'attemptCount'>>(),
  ]);
  if (!latest && !done && !failed) return undefined;
  return Math.max(latest?.attemptNumber ?? 0, done?.attemptCount ?? 0, failed?.attemptCount ?? 0);
}

export function deliveryService(deps: DeliveryServiceDeps): AsyncService<deliveryV1.DeliveryServiceServer> {
  const { models } = deps;
  return {
    async sendTestEvent(req) {
      const v = new Violations();
      scope(v, req.workspaceId, req.endpointId);
      const p = eventTypeProblem(req.eventType);
      if (p) v.add('event_type', p);
      v.throwIfAny();
      const example = await deps.examples.example(req.eventType);
      if (example === undefined) throw notFound(`event type ${req.eventType} is not in the catalog`);
      const [sub] = await deps.subscribers.resolve(req.workspaceId, req.eventType, req.endpointId);
      if (!sub) throw notFound(`endpoint ${req.endpointId} not found in workspace ${req.workspaceId}, or disabled`);
      const startedAt = new Date();
      const event = { id: timeOrderedId('evt'), workspaceId: req.workspaceId, type: req.eventType, createdAt: startedAt, payload: Buffer.from(example, 'utf8') };
      const request = prepare(event, sub, startedAt.getTime());
      const result = await deps.http.send(request);
      const ok = result.kind === 'response' && result.status >= 200 && result.status < 300;
      const doc = attemptDoc(
        { workspaceId: req.workspaceId, endpointId: req.endpointId, eventId: event.id, eventType: req.eventType, eventCreatedAt: startedAt, kind: 'test', attemptNumber: 1, url: sub.url },
        request,
        result,
        ok,
        startedAt,
        deps.retentionMs,
      );
      await models.attempts.create(doc);
      return { attempt: toAttempt(doc) };
    },

    async listAttempts(req) {
      const v = new Violations();
      scope(v, req.workspaceId, req.endpointId);
      if (req.pageSize < 0 || req.pageSize > MAX_PAGE) v.add('page_size', `must be between 0 and ${MAX_PAGE} (0 means 50)`);
      // ts-proto keeps unknown enum numbers as they are: refuse them rather than ignore the filter.
      if (!(Object.values(deliveryV1.AttemptKind) as unknown[]).includes(req.kind) || req.kind === deliveryV1.AttemptKind.UNRECOGNIZED) {
        v.add('kind', 'must be ATTEMPT_KIND_UNSPECIFIED (both), ATTEMPT_KIND_LIVE or ATTEMPT_KIND_TEST');
      }
      if (!(Object.values(deliveryV1.AttemptOutcome) as unknown[]).includes(req.outcome) || req.outcome === deliveryV1.AttemptOutcome.UNRECOGNIZED) {
        v.add('outcome', 'must be ATTEMPT_OUTCOME_UNSPECIFIED (both), ATTEMPT_OUTCOME_SUCCEEDED or ATTEMPT_OUTCOME_FAILED');
      }
      const after = req.pageToken ? Buffer.from(req.pageToken, 'base64url').toString('utf8') : undefined;
      if (after !== undefined && !/^att_[0-9a-f]{32}$/.test(after)) v.add('page_token', 'is not a token from a previous response; omit it to start from the first page');
      v.throwIfAny();
      const size = req.pageSize === 0 ? 50 : req.pageSize;
      const filter: Record<string, unknown> = { workspaceId: req.workspaceId, endpointId: req.endpointId };
      if (req.kind === KIND.live) filter.kind = 'live';
      if (req.kind === KIND.test) filter.kind = 'test';
      if (req.outcome === OUTCOME.succeeded) filter.outcome = 'succeeded';
      if (req.outcome === OUTCOME.failed) filter.outcome = 'failed';
      if (req.eventId) filter.eventId = req.eventId;
      if (after) filter._id = { $lt: after };
      const docs = await models.attempts.find(filter).sort({ _id: -1 }).limit(size + 1).lean<AttemptDoc[]>();
      const page = docs.slice(0, size);
      return { attempts: page.map(toAttempt), nextPageToken: docs.length > size ? Buffer.from(page[page.length - 1]!._id).toString('base64url') : '' };
    },

    async getAttempt(req) {
      const v = new Violations();
      const p = workspaceIdProblem(req.workspaceId);
      if (p) v.add('workspace_id', p);
      if (!req.attemptId) v.add('attempt_id', 'is required');
      v.throwIfAny();
      const doc = await models.attempts.findOne({ _id: req.attemptId, workspaceId: req.workspaceId }).lean<AttemptDoc>();
      if (!doc) throw notFound(`attempt ${req.attemptId} not found in workspace ${req.workspaceId}`);
      return { attempt: toAttempt(doc) };
    },

    async retryDelivery(req) {
      const v = new Violations();
      scope(v, req.workspaceId, req.endpointId);
      if (!req.eventId) v.add('event_id', 'is required');
      v.throwIfAny();
      const [event, made] = await Promise.all([
        models.events.findOne({ _id: req.eventId, workspaceId: req.workspaceId }).lean<EventDoc>(),
        attemptsMade(models, req.workspaceId, req.endpointId, req.eventId),
      ]);
      if (!event || made === undefined) throw notFound(`no delivery of event ${req.eventId} to endpoint ${req.endpointId} in workspace ${req.workspaceId}`);
      // One more attempt, due now, through the shortest tier like any waiting work. Should a
      // scheduled retry of the same delivery come due too, both make attempt `made + 1`: the one
      // recorded second stops there (the attempt-number index), so the chains do not double.
      const now = Date.now();
      await deps.waiting.wait([{ event: eventData(event), endpointId: req.endpointId, attemptsMade: made, dueAt: now, verify: false }]);
      return { delivery: { eventId: req.eventId, endpointId: req.endpointId, state: STATE.pending, attemptCount: made, nextAttemptTime: new Date(now) } };
    },

    async recoverEndpoint(req) {
      const v = new Violations();
      scope(v, req.workspaceId, req.endpointId);
      if (!req.since) v.add('since', 'is required');
      else if (req.since.getTime() < Date.now() - MAX_RECOVER_MS) v.add('since', 'must be within the last 14 days');
      else if (req.since.getTime() > Date.now()) v.add('since', 'must not be in the future');
      v.throwIfAny();
      // Deliveries that ended without success, less those that succeeded since (a manual retry).
      const ended = await models.failed.find({ workspaceId: req.workspaceId, endpointId: req.endpointId, eventCreatedAt: { $gte: req.since! } }).lean<FailedDoc[]>();
      const latest = new Map<string, FailedDoc>();
      for (const f of ended) if ((latest.get(f.deliveryId)?.attemptCount ?? -1) < f.attemptCount) latest.set(f.deliveryId, f);
      const candidates = [...latest.values()];
      // Lookups by _id: FerretDB answers those from its primary key (it scans for `$in`).
      const delivered = await Promise.all(candidates.map((f) => models.delivered.exists({ _id: f.deliveryId })));
      const todo = candidates.filter((_, i) => !delivered[i]);
      const events = await Promise.all([...new Set(todo.map((f) => f.eventId))].map((id) => models.events.findById(id).lean<EventDoc>()));
      const byId = new Map(events.filter((e): e is EventDoc => e !== null).map((e) => [e._id, e]));
      const now = Date.now();
      const tasks: Task[] = todo.flatMap((f) => {
        const e = byId.get(f.eventId);
        // An event past retention cannot be sent again; it is not counted.
        return e ? [{ event: eventData(e), endpointId: f.endpointId, attemptsMade: f.attemptCount, dueAt: now, verify: false }] : [];
      });
      await deps.waiting.wait(tasks);
      return { deliveriesRequeued: tasks.length };
    },
  };
}

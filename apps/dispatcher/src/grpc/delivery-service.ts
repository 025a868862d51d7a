// DeliveryService: test sends, the attempt log, manual retry and recovery.
import { deliveryV1 } from '@hookline/proto';
import { notFound, timeOrderedId, Violations, type AsyncService } from '@hookline/service-kit';
import { eventTypeProblem, workspaceIdProblem } from '@hookline/schemas';
import { attemptFromStored, payloadBytes, storedAttempt, type AttemptDoc, type DispatcherModels, type EventDoc, type FailedDoc, type StoredAttempt } from '../store/models';
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
/** Attempt documents one ListDeliveries call reads at most (a state filter may skip many). */
const MAX_SCAN = 2_000;
const MAX_RECOVER_MS = 14 * 24 * 3600 * 1000;

const KIND = { live: deliveryV1.AttemptKind.ATTEMPT_KIND_LIVE, test: deliveryV1.AttemptKind.ATTEMPT_KIND_TEST } as const;
const OUTCOME = { succeeded: deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED, failed: deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_FAILED } as const;
const STATE = { pending: deliveryV1.DeliveryState.DELIVERY_STATE_PENDING, succeeded: deliveryV1.DeliveryState.DELIVERY_STATE_SUCCEEDED, failed: deliveryV1.DeliveryState.DELIVERY_STATE_FAILED } as const;

export function toAttempt(stored: AttemptDoc | StoredAttempt): deliveryV1.Attempt {
  const a = attemptFromStored(stored);
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

/**
 * Where a delivery stands, from its latest attempt: succeeded; failed for good (no next attempt,
 * or a `failed` record written after it: the endpoint was disabled or deleted while it waited);
 * else pending until `nextAttemptAt`.
 */
function deliveryOf(latest: Omit<StoredAttempt, 'detail'>, endedAfter: boolean): deliveryV1.Delivery {
  const state = latest.outcome === 'succeeded' ? STATE.succeeded : latest.nextAttemptAt && !endedAfter ? STATE.pending : STATE.failed;
  return {
    eventId: latest.eventId,
    endpointId: latest.endpointId,
    state,
    attemptCount: latest.attemptNumber,
    nextAttemptTime: state === STATE.pending ? latest.nextAttemptAt! : undefined,
    eventType: latest.eventType,
    eventCreateTime: latest.eventCreatedAt,
    latestAttemptId: latest._id,
    latestAttemptTime: latest.createdAt,
    latestResponseStatus: latest.responseStatus,
  };
}

const LATEST_FIELDS = { deliveryId: 1, workspaceId: 1, endpointId: 1, eventId: 1, eventType: 1, outcome: 1, attemptNumber: 1, nextAttemptAt: 1, eventCreatedAt: 1, createdAt: 1, responseStatus: 1 } as const;

const eventData = (e: EventDoc) => ({ id: e._id, workspaceId: e.workspaceId, type: e.eventType, createdAt: e.createdAt, payload: payloadBytes(e.payload) });

/**
 * Attempts made of one delivery so far, from its latest attempt or outcome (all in the bucket of
 * its event's time); undefined when the delivery is unknown (never attempted, or expired).
 */
async function attemptsMade(models: DispatcherModels, event: EventDoc, endpointId: string): Promise<number | undefined> {
  const id = `${event._id}|${endpointId}`;
  const [attempts, delivered, failed] = [models.attempts.of(event.createdAt), models.delivered.of(event.createdAt), models.failed.of(event.createdAt)];
  const [latest, done, ended] = await Promise.all([
    attempts.findOne({ deliveryId: id, kind: 'live' }, { attemptNumber: 1 }).sort({ attemptNumber: -1 }).lean<Pick<AttemptDoc, 'attemptNumber'>>(),
    delivered.findOne({ _id: id }, { attemptCount: 1 }).lean<{ attemptCount: number }>(),
    failed.findOne({ deliveryId: id }, { attemptCount: 1 }).sort({ attemptCount: -1 }).lean<Pick<FailedDoc, 'attemptCount'>>(),
  ]);
  if (!latest && !done && !ended) return undefined;
  return Math.max(latest?.attemptNumber ?? 0, done?.attemptCount ?? 0, ended?.attemptCount ?? 0);
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
      await (await models.attempts.forWrite(startedAt))!.create(storedAttempt(doc));
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
      const docs = (await models.attempts.find(filter, { sort: { _id: -1 }, limit: size + 1 })).map((d) => d.doc);
      const page = docs.slice(0, size);
      return { attempts: page.map(toAttempt), nextPageToken: docs.length > size ? Buffer.from(page[page.length - 1]!._id).toString('base64url') : '' };
    },

    async listDeliveries(req) {
      const v = new Violations();
      scope(v, req.workspaceId, req.endpointId);
      if (req.pageSize < 0 || req.pageSize > MAX_PAGE) v.add('page_size', `must be between 0 and ${MAX_PAGE} (0 means 50)`);
      if (!(Object.values(deliveryV1.DeliveryState) as unknown[]).includes(req.state) || req.state === deliveryV1.DeliveryState.UNRECOGNIZED) {
        v.add('state', 'must be DELIVERY_STATE_UNSPECIFIED (every state), DELIVERY_STATE_PENDING, DELIVERY_STATE_SUCCEEDED or DELIVERY_STATE_FAILED');
      }
      const after = req.pageToken ? Buffer.from(req.pageToken, 'base64url').toString('utf8') : undefined;
      if (after !== undefined && !/^att_[0-9a-f]{32}$/.test(after)) v.add('page_token', 'is not a token from a previous response; omit it to start from the first page');
      v.throwIfAny();
      const size = req.pageSize === 0 ? 50 : req.pageSize;
      // The attempt log, newest first (the index ListAttempts uses). A delivery's first attempt
      // met in that order is its latest; older ones are skipped. On a later page, a delivery
      // whose latest attempt came before the token (an earlier page) is recognised by its next
      // attempt number existing: that lookup rides the unique {deliveryId, attemptNumber} index.
      const filter: Record<string, unknown> = { workspaceId: req.workspaceId, endpointId: req.endpointId, kind: 'live' };
      if (req.eventId) filter.eventId = req.eventId;
      if (after) filter._id = { $lt: after };
      const seen = new Set<string>();
      const page: deliveryV1.Delivery[] = [];
      let scanned = 0;
      let last: string | undefined;
      let exhausted = false;
      while (page.length < size && scanned < MAX_SCAN) {
        const chunk = await models.attempts.find(last ? { ...filter, _id: { $lt: last } } : filter, { sort: { _id: -1 }, limit: Math.min(MAX_SCAN - scanned, Math.max(size * 2, 100)), projection: LATEST_FIELDS });
        if (chunk.length === 0) {
          exhausted = true;
          break;
        }
        const fresh = chunk.filter(({ doc }) => !seen.has(doc.deliveryId) && seen.add(doc.deliveryId));
        const [newer, ended] = await Promise.all([
          // Lookups by unique key or by _id in the delivery's own bucket, never `$in` (FerretDB
          // scans once per id for that).
          Promise.all(fresh.map(({ doc: a, bucket }) => (after ? bucket.model.exists({ deliveryId: a.deliveryId, attemptNumber: a.attemptNumber + 1 }) : null))),
          Promise.all(fresh.map(({ doc: a }) => (a.outcome === 'failed' && a.nextAttemptAt ? models.failed.of(a.eventCreatedAt).exists({ _id: `${a.deliveryId}|${a.attemptNumber}` }) : null))),
        ]);
        for (let i = 0; i < fresh.length; i++) {
          scanned++;
          if (newer[i]) continue;
          const d = deliveryOf(fresh[i]!.doc, ended[i] !== null);
          if (req.state !== deliveryV1.DeliveryState.DELIVERY_STATE_UNSPECIFIED && d.state !== req.state) continue;
          page.push(d);
          if (page.length === size) break;
        }
        scanned += chunk.length - fresh.length;
        // Resume after the last attempt looked at: the one that filled the page, or the chunk's end.
        last = page.length === size ? page[page.length - 1]!.latestAttemptId : chunk[chunk.length - 1]!.doc._id;
      }
      const more = !exhausted && last !== undefined && (await models.attempts.exists({ ...filter, _id: { $lt: last } }));
      return { deliveries: page, nextPageToken: more ? Buffer.from(last!).toString('base64url') : '' };
    },

    async getAttempt(req) {
      const v = new Violations();
      const p = workspaceIdProblem(req.workspaceId);
      if (p) v.add('workspace_id', p);
      if (!req.attemptId) v.add('attempt_id', 'is required');
      v.throwIfAny();
      const doc = await models.attempts.findOne({ _id: req.attemptId, workspaceId: req.workspaceId });
      if (!doc) throw notFound(`attempt ${req.attemptId} not found in workspace ${req.workspaceId}`);
      return { attempt: toAttempt(doc) };
    },

    async retryDelivery(req) {
      const v = new Violations();
      scope(v, req.workspaceId, req.endpointId);
      if (!req.eventId) v.add('event_id', 'is required');
      v.throwIfAny();
      const event = await models.events.findOne({ _id: req.eventId, workspaceId: req.workspaceId });
      const made = event ? await attemptsMade(models, event, req.endpointId) : undefined;
      if (!event || made === undefined) throw notFound(`no delivery of event ${req.eventId} to endpoint ${req.endpointId} in workspace ${req.workspaceId}`);
      // One more attempt, due now, through the shortest tier like any waiting work. Should a
      // scheduled retry of the same delivery come due too, both make attempt `made + 1`: the one
      // recorded second stops there (the attempt-number index), so the chains do not double.
      const now = Date.now();
      await deps.waiting.wait([{ event: eventData(event), endpointId: req.endpointId, attemptsMade: made, dueAt: now, verify: false }]);
      return {
        delivery: { eventId: req.eventId, endpointId: req.endpointId, state: STATE.pending, attemptCount: made, nextAttemptTime: new Date(now), eventType: event.eventType, eventCreateTime: event.createdAt, latestAttemptId: '', latestAttemptTime: undefined, latestResponseStatus: 0 },
      };
    },

    async recoverEndpoint(req) {
      const v = new Violations();
      scope(v, req.workspaceId, req.endpointId);
      if (!req.since) v.add('since', 'is required');
      else if (req.since.getTime() < Date.now() - MAX_RECOVER_MS) v.add('since', 'must be within the last 14 days');
      else if (req.since.getTime() > Date.now()) v.add('since', 'must not be in the future');
      v.throwIfAny();
      // Deliveries that ended without success, less those that succeeded since (a manual retry).
      const since = req.since!.getTime();
      const buckets = (await models.failed.all()).filter((b) => b.end > since);
      const ended = (await models.failed.find({ workspaceId: req.workspaceId, endpointId: req.endpointId, eventCreatedAt: { $gte: req.since! } }, {}, buckets)).map((f) => f.doc);
      const latest = new Map<string, FailedDoc>();
      for (const f of ended) if ((latest.get(f.deliveryId)?.attemptCount ?? -1) < f.attemptCount) latest.set(f.deliveryId, f);
      const candidates = [...latest.values()];
      // Lookups by _id in the event's bucket: FerretDB answers those from its primary key (it scans for `$in`).
      const delivered = await Promise.all(candidates.map((f) => models.delivered.of(f.eventCreatedAt).exists({ _id: f.deliveryId })));
      const todo = candidates.filter((_, i) => !delivered[i]);
      const firstOf = new Map(todo.map((f) => [f.eventId, f]));
      const events = await Promise.all([...firstOf.values()].map((f) => models.events.of(f.eventCreatedAt).findById(f.eventId).lean<EventDoc>()));
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

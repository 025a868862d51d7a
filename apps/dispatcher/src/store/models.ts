// The dispatcher's collections, every one written by inserts only (FerretDB scans the
// collection for every update or delete by _id; inserts are cheap, ~25,000 documents/s grouped):
// events (payload stored once per event), attempts (the log: one document per HTTP attempt, which
// says what became of the delivery: succeeded, failed and due again at nextAttemptAt, or failed
// for good), delivered (one per successful delivery) and failed (one per delivery that ended
// without success). Deliveries that wait are not documents: they are records on the retry tier
// topics (retry/). A delivery's state is what its latest attempt says. The four expiring
// collections are series of time buckets by event creation time (store/buckets.ts), dropped
// whole past retention (store/retention.ts); `expiresAt` (write time + retention, on events,
// attempts and failed) is informational. Documents carry only what is read: FerretDB's insert
// cost grows with a document's field count (see StoredAttempt).
import { Schema, type Connection, type Model } from 'mongoose';
import { Bucketed, bucketSizeFor } from './buckets';

export interface EventDoc {
  _id: string;
  workspaceId: string;
  eventType: string;
  payload: Buffer | { buffer: Uint8Array };
  createdAt: Date;
  expiresAt: Date;
}

/**
 * A delivery that succeeded (`_id` = `${eventId}|${endpointId}`), written once and never updated.
 * Only ever looked up by `_id` (is it delivered, after how many attempts), so it holds nothing
 * else: the attempt log has the rest, and each field more costs FerretDB on every success.
 */
export interface DeliveredDoc {
  _id: string;
  /** Which time bucket it is in. */
  eventCreatedAt: Date;
  /** Attempts it took, this successful one included. */
  attemptCount: number;
  deliveredAt: Date;
}

/**
 * A delivery that ended without success (retries exhausted, 410, endpoint deleted or disabled).
 * `_id` = `${deliveryId}|${attemptCount}`: a delivery recovered and failed again has one per end.
 */
export interface FailedDoc {
  _id: string;
  deliveryId: string;
  eventId: string;
  workspaceId: string;
  endpointId: string;
  eventType: string;
  eventCreatedAt: Date;
  attemptCount: number;
  reason: string;
  failedAt: Date;
  expiresAt: Date;
}

export interface AttemptDoc {
  _id: string;
  /** `${eventId}|${endpointId}`; unique with attemptNumber for live attempts (see the index). */
  deliveryId: string;
  workspaceId: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  kind: 'live' | 'test';
  outcome: 'succeeded' | 'failed';
  attemptNumber: number;
  url: string;
  resolvedIp: string;
  requestHeaders: Record<string, string>;
  responseStatus: number;
  responseHeaders: Record<string, string>;
  responseBody: string;
  responseBodyTruncated: boolean;
  durationMs: number;
  error: string;
  /** When the next attempt is due, for a failed attempt that will be retried; null otherwise. */
  nextAttemptAt: Date | null;
  eventCreatedAt: Date;
  createdAt: Date;
  expiresAt: Date;
}

/** The attempt fields queries filter, sort or list on (ListAttempts, ListDeliveries, the attempt-number index). */
const ATTEMPT_TOP = ['_id', 'deliveryId', 'workspaceId', 'endpointId', 'eventId', 'eventType', 'kind', 'outcome', 'attemptNumber', 'responseStatus', 'nextAttemptAt', 'eventCreatedAt', 'createdAt'] as const;
type AttemptTop = (typeof ATTEMPT_TOP)[number];
/** The rest: what one attempt's page shows (headers, body, timing), read whole and never queried. */
type AttemptDetail = Omit<AttemptDoc, AttemptTop>;

/**
 * An attempt as stored: the fields queries use at the top, the rest in `detail`, one JSON string.
 * FerretDB's cost per inserted document grows with its field count (every field and its type are
 * converted and written as JSON): grouped inserts of the attempt's 22 fields and ~11 header
 * fields took ~118 µs per document, of this shape ~65 µs, and attempts are half of everything
 * the dispatcher writes. Documents written before this shape (every field at the top, no
 * `detail`) read the same through attemptFromStored.
 */
export type StoredAttempt = Pick<AttemptDoc, AttemptTop> & { detail: string };

export function storedAttempt(a: AttemptDoc): StoredAttempt {
  const { _id, deliveryId, workspaceId, endpointId, eventId, eventType, kind, outcome, attemptNumber, responseStatus, nextAttemptAt, eventCreatedAt, createdAt, ...detail } = a;
  return { _id, deliveryId, workspaceId, endpointId, eventId, eventType, kind, outcome, attemptNumber, responseStatus, nextAttemptAt, eventCreatedAt, createdAt, detail: JSON.stringify(detail) };
}

export function attemptFromStored(s: StoredAttempt | AttemptDoc): AttemptDoc {
  if (!('detail' in s) || typeof s.detail !== 'string') return s as AttemptDoc;
  const { detail, ...top } = s;
  const d = JSON.parse(detail) as Omit<AttemptDetail, 'expiresAt'> & { expiresAt: string };
  return { ...top, ...d, expiresAt: new Date(d.expiresAt) };
}

export interface EndpointHealthDoc {
  /** `${workspaceId}|${endpointId}` */
  _id: string;
  workspaceId: string;
  endpointId: string;
  lastSuccessAt: Date | null;
  /** Start of the current run of failures; null after a success or an auto-disable. */
  failingSince: Date | null;
  /** When this dispatcher last auto-disabled the endpoint. */
  disabledAt?: Date | null;
}

export interface DispatcherModels {
  events: Bucketed<EventDoc>;
  delivered: Bucketed<DeliveredDoc>;
  failed: Bucketed<FailedDoc>;
  attempts: Bucketed<StoredAttempt>;
  health: Model<EndpointHealthDoc>;
}

const opts = (collection: string) => ({ collection, versionKey: false as const, autoIndex: false, minimize: false });

export function dispatcherModels(db: Connection, retentionMs: number, now: () => number = Date.now): DispatcherModels {
  const size = bucketSizeFor(retentionMs);
  const events = new Schema<EventDoc>(
    { _id: String, workspaceId: String, eventType: String, payload: Buffer, createdAt: Date, expiresAt: Date },
    opts('events'),
  );

  const delivered = new Schema<DeliveredDoc>({ _id: String, eventCreatedAt: Date, attemptCount: Number, deliveredAt: Date }, opts('delivered'));

  const failed = new Schema<FailedDoc>(
    { _id: String, deliveryId: String, eventId: String, workspaceId: String, endpointId: String, eventType: String, eventCreatedAt: Date, attemptCount: Number, reason: String, failedAt: Date, expiresAt: Date },
    opts('failed'),
  );
  failed.index({ workspaceId: 1, endpointId: 1, eventCreatedAt: 1 });

  const attempts = new Schema<StoredAttempt>(
    {
      _id: String,
      deliveryId: String,
      workspaceId: String,
      endpointId: String,
      eventId: String,
      eventType: String,
      kind: String,
      outcome: String,
      attemptNumber: Number,
      responseStatus: Number,
      nextAttemptAt: Date,
      eventCreatedAt: Date,
      createdAt: Date,
      detail: String,
    },
    opts('attempts'),
  );
  // One attempt number per delivery: two chains of the same delivery (a Kafka record read again
  // after a crash, a manual retry racing a scheduled one) collide on their next attempt, and the
  // one whose insert loses stops (it schedules no retry). Unique indexes are enforced by MongoDB
  // and FerretDB alike.
  attempts.index({ deliveryId: 1, attemptNumber: 1 }, { unique: true });
  attempts.index({ workspaceId: 1, endpointId: 1, _id: -1 });

  const health = new Schema<EndpointHealthDoc>(
    { _id: String, workspaceId: String, endpointId: String, lastSuccessAt: Date, failingSince: Date, disabledAt: Date },
    opts('endpoint_health'),
  );

  return {
    events: new Bucketed(db, 'events', events, size, retentionMs, now),
    delivered: new Bucketed(db, 'delivered', delivered, size, retentionMs, now),
    failed: new Bucketed(db, 'failed', failed, size, retentionMs, now),
    attempts: new Bucketed(db, 'attempts', attempts, size, retentionMs, now),
    health: db.model<EndpointHealthDoc>('EndpointHealth', health),
  };
}

export const payloadBytes = (p: EventDoc['payload']): Buffer => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer));

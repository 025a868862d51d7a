// The dispatcher's collections: events (payload stored once per event), deliveries (one event
// to one endpoint that needs the database: retries, work spilled from memory, failures, with
// state, next attempt and lease), delivered (first-attempt successes, written once and never
// updated) and attempts (the log). A delivery that succeeds at its first attempt never touches
// `deliveries`: it stays small, which matters where updates and filters scan the collection
// (FerretDB), and the common case costs two grouped inserts. Expiry is a field plus a
// sweeper so the same code runs on MongoDB and FerretDB (no TTL indexes there).
import { Schema, type Connection, type Model } from 'mongoose';

export interface EventDoc {
  _id: string;
  workspaceId: string;
  eventType: string;
  payload: Buffer | { buffer: Uint8Array };
  createdAt: Date;
  expiresAt: Date;
}

export type DeliveryStateName = 'pending' | 'succeeded' | 'failed';

export interface DeliveryDoc {
  /** `${eventId}|${endpointId}`: one delivery per pair, so redelivered Kafka records are no-ops. */
  _id: string;
  eventId: string;
  workspaceId: string;
  endpointId: string;
  eventType: string;
  eventCreatedAt: Date;
  state: DeliveryStateName;
  attemptCount: number;
  nextAttemptAt: Date | null;
  /** Replica holding the delivery until leaseUntil; others wait for the lease to lapse. */
  leaseOwner: string;
  leaseUntil: Date;
  lastError: string;
  updatedAt: Date;
  expiresAt: Date;
  /** W3C traceparent of the intake that created it (only with tracing on): retries link to that trace. */
  traceparent?: string;
  /**
   * Written for a Kafka record seen again (a rebalance or crash before its offset was committed):
   * the replica that had it may have delivered it already, so before attempting, the scheduler
   * looks for it in `delivered`.
   */
  verify?: boolean;
}

/** A delivery that succeeded at its first attempt (`_id` as in deliveries). */
export type DeliveredDoc = Pick<DeliveryDoc, '_id' | 'eventId' | 'workspaceId' | 'endpointId' | 'eventType' | 'eventCreatedAt' | 'attemptCount' | 'expiresAt'> & { deliveredAt: Date };

export interface AttemptDoc {
  _id: string;
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
  createdAt: Date;
  expiresAt: Date;
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
  events: Model<EventDoc>;
  deliveries: Model<DeliveryDoc>;
  delivered: Model<DeliveredDoc>;
  attempts: Model<AttemptDoc>;
  health: Model<EndpointHealthDoc>;
}

const opts = (collection: string) => ({ collection, versionKey: false as const, autoIndex: false, minimize: false });

export function dispatcherModels(db: Connection): DispatcherModels {
  const events = new Schema<EventDoc>(
    { _id: String, workspaceId: String, eventType: String, payload: Buffer, createdAt: Date, expiresAt: Date },
    opts('events'),
  );
  events.index({ expiresAt: 1 });

  const deliveries = new Schema<DeliveryDoc>(
    {
      _id: String,
      eventId: String,
      workspaceId: String,
      endpointId: String,
      eventType: String,
      eventCreatedAt: Date,
      state: String,
      attemptCount: Number,
      nextAttemptAt: Date,
      leaseOwner: String,
      leaseUntil: Date,
      lastError: String,
      updatedAt: Date,
      expiresAt: Date,
      traceparent: String,
      verify: Boolean,
    },
    opts('deliveries'),
  );
  deliveries.index({ state: 1, nextAttemptAt: 1 });
  deliveries.index({ workspaceId: 1, endpointId: 1, state: 1, eventCreatedAt: 1 });
  deliveries.index({ expiresAt: 1 });

  const delivered = new Schema<DeliveredDoc>(
    { _id: String, eventId: String, workspaceId: String, endpointId: String, eventType: String, eventCreatedAt: Date, attemptCount: Number, deliveredAt: Date, expiresAt: Date },
    opts('delivered'),
  );
  delivered.index({ expiresAt: 1 });

  const attempts = new Schema<AttemptDoc>(
    {
      _id: String,
      workspaceId: String,
      endpointId: String,
      eventId: String,
      eventType: String,
      kind: String,
      outcome: String,
      attemptNumber: Number,
      url: String,
      resolvedIp: String,
      requestHeaders: Schema.Types.Mixed,
      responseStatus: Number,
      responseHeaders: Schema.Types.Mixed,
      responseBody: String,
      responseBodyTruncated: Boolean,
      durationMs: Number,
      error: String,
      createdAt: Date,
      expiresAt: Date,
    },
    opts('attempts'),
  );
  attempts.index({ workspaceId: 1, endpointId: 1, _id: -1 });
  attempts.index({ expiresAt: 1 });

  const health = new Schema<EndpointHealthDoc>(
    { _id: String, workspaceId: String, endpointId: String, lastSuccessAt: Date, failingSince: Date, disabledAt: Date },
    opts('endpoint_health'),
  );

  return {
    events: db.model<EventDoc>('Event', events),
    deliveries: db.model<DeliveryDoc>('Delivery', deliveries),
    delivered: db.model<DeliveredDoc>('Delivered', delivered),
    attempts: db.model<AttemptDoc>('Attempt', attempts),
    health: db.model<EndpointHealthDoc>('EndpointHealth', health),
  };
}

export const payloadBytes = (p: EventDoc['payload']): Buffer => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer));

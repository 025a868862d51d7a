// The registry's collections. Only this service reads or writes them.
import { Schema, type Connection, type Model } from 'mongoose';
import type { SealedSecret } from '../secrets/secret-box';
import type { LockDoc } from './endpoint-locks';

export interface StoredSecret extends SealedSecret {
  /** null for the current secret; set for a previous one in its grace period. */
  expiresAt: Date | null;
}

export interface EndpointDoc {
  _id: string;
  workspaceId: string;
  url: string;
  description: string;
  enabled: boolean;
  disabledReason: string;
  subscription: { all: boolean; types: string[] };
  standardWebhooks: boolean;
  secrets: StoredSecret[];
  /** Client request id of the create call; the endpoint id when none was given (unique index). */
  requestId: string;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

export interface EventTypeDoc {
  _id: string;
  description: string;
  schemaJson: string;
  exampleJson: string;
  deprecated: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

const secretSchema = new Schema<StoredSecret>(
  { kid: String, iv: Buffer, ct: Buffer, tag: Buffer, expiresAt: { type: Date, default: null } },
  { _id: false },
);

export interface RegistryModels {
  endpoints: Model<EndpointDoc>;
  eventTypes: Model<EventTypeDoc>;
  /** Per-endpoint writer locks (see endpoint-locks.ts). */
  locks: Model<LockDoc>;
  /** Ids of deleted endpoints, so a repeated DeleteEndpoint succeeds (it is IDEMPOTENT). */
  tombstones: Model<TombstoneDoc>;
}

/**
 * What is left of a deleted endpoint: its id and workspace, nothing else (no URL, no secret).
 * Kept for good: ~100 bytes each, and ids are never reused.
 */
export interface TombstoneDoc {
  _id: string;
  workspaceId: string;
  deletedAt: Date;
}

export function registryModels(db: Connection): RegistryModels {
  const endpointSchema = new Schema<EndpointDoc>(
    {
      _id: String,
      workspaceId: { type: String, required: true },
      url: { type: String, required: true },
      description: { type: String, default: '' },
      enabled: { type: Boolean, default: true },
      disabledReason: { type: String, default: '' },
      subscription: { all: { type: Boolean, default: true }, types: { type: [String], default: [] } },
      standardWebhooks: { type: Boolean, default: false },
      secrets: { type: [secretSchema], default: [] },
      requestId: { type: String, required: true },
      createdAt: Date,
      updatedAt: Date,
      version: { type: Number, default: 1 },
    },
    { collection: 'endpoints', versionKey: false, autoIndex: false },
  );
  // Pagination and workspace scoping; subscriber resolution; idempotent create.
  endpointSchema.index({ workspaceId: 1, _id: 1 });
  endpointSchema.index({ workspaceId: 1, requestId: 1 }, { unique: true });

  const eventTypeSchema = new Schema<EventTypeDoc>(
    {
      _id: String,
      description: { type: String, default: '' },
      schemaJson: { type: String, required: true },
      exampleJson: { type: String, required: true },
      deprecated: { type: Boolean, default: false },
      version: { type: Number, default: 1 },
      createdAt: Date,
      updatedAt: Date,
    },
    { collection: 'event_types', versionKey: false, autoIndex: false },
  );

  const lockSchema = new Schema<LockDoc>(
    { _id: String, owner: { type: String, required: true }, at: { type: Date, required: true } },
    { collection: 'endpoint_locks', versionKey: false, autoIndex: false },
  );

  const tombstoneSchema = new Schema<TombstoneDoc>(
    { _id: String, workspaceId: { type: String, required: true }, deletedAt: { type: Date, required: true } },
    { collection: 'endpoint_tombstones', versionKey: false, autoIndex: false },
  );

  return {
    tombstones: db.model<TombstoneDoc>('EndpointTombstone', tombstoneSchema),
    endpoints: db.model<EndpointDoc>('Endpoint', endpointSchema),
    eventTypes: db.model<EventTypeDoc>('EventType', eventTypeSchema),
    locks: db.model<LockDoc>('EndpointLock', lockSchema),
  };
}

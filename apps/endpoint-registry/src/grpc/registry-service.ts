// EndpointRegistryService handlers: validate the request completely, then touch the store once.
import { status } from '@grpc/grpc-js';
import { endpointsV1 } from '@hookline/proto';
import {
  alreadyExists,
  ServiceError,
  failedPrecondition,
  invalidField,
  notFound,
  timeOrderedId,
  Violations,
  type AsyncService,
} from '@hookline/service-kit';
import { compileSchema, eventTypeProblem, parseJson, workspaceIdProblem } from '@hookline/schemas';
import { generateSecret } from '@hookline/signing';
import { urlRefusal, type AllowList } from '@hookline/url-policy';
import type { ChangeNotifier } from '../changes';
import { aborted } from '../errors';
import { isDuplicateKey, type EndpointLocks } from '../store/endpoint-locks';
import type { RegistryModels, EndpointDoc, EventTypeDoc, StoredSecret } from '../store/models';
import { secretAad, type SecretBox } from '../secrets/secret-box';


type Service = AsyncService<endpointsV1.EndpointRegistryServiceServer>;

const MAX_DESCRIPTION = 1024;
const MAX_REQUEST_ID = 128;
const MAX_PAGE = 500;
const MAX_GRACE_MS = 7 * 24 * 3600 * 1000;
/** Re-reads and re-applies a change this often when another writer bumped `version` in between. */
const MAX_UPDATE_ATTEMPTS = 5;
const MAX_SUBSCRIBED_TYPES = 500;
const MAX_SCHEMA_BYTES = 64 * 1024;

export interface RegistryDeps {
  models: RegistryModels;
  box: SecretBox;
  allow: AllowList;
  changes: ChangeNotifier;
  locks: EndpointLocks;
  now?: () => Date;
}

/**
 * Stored form of a client's request_id. Endpoints created without one store their own id (to keep
 * the unique index on workspaceId+requestId usable without partial indexes, which FerretDB lacks);
 * the prefix keeps a client from naming such an endpoint's id as its request_id and being answered
 * with that endpoint and its secret.
 */
const storedRequestId = (requestId: string): string => `req:${requestId}`;


function toEndpoint(d: EndpointDoc): endpointsV1.Endpoint {
  return {
    id: d._id,
    workspaceId: d.workspaceId,
    url: d.url,
    description: d.description,
    enabled: d.enabled,
    disabledReason: d.disabledReason,
    subscription: { selection: d.subscription.all ? { $case: 'allEvents', value: true } : { $case: 'eventTypes', value: { names: d.subscription.types } } },
    standardWebhooks: d.standardWebhooks,
    createTime: d.createdAt,
    updateTime: d.updatedAt,
    version: String(d.version),
  };
}

function toEventType(d: EventTypeDoc): endpointsV1.EventType {
  return {
    name: d._id,
    description: d.description,
    schemaJson: d.schemaJson,
    exampleJson: d.exampleJson,
    deprecated: d.deprecated,
    version: String(d.version),
    createTime: d.createdAt,
    updateTime: d.updatedAt,
  };
}

/** Page tokens are opaque to callers: base64url of the last id seen. */
const encodeToken = (id: string): string => Buffer.from(id, 'utf8').toString('base64url');
function decodeToken(token: string, v: Violations): string | undefined {
  if (!token) return undefined;
  const id = Buffer.from(token, 'base64url').toString('utf8');
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(id)) {
    v.add('page_token', 'is not a token from a previous response; omit it to start from the first page');
    return undefined;
  }
  return id;
}

function pageSize(n: number, fallback: number, v: Violations): number {
  if (n < 0 || n > MAX_PAGE) v.add('page_size', `must be between 0 and ${MAX_PAGE} (0 means ${fallback})`);
  return n === 0 ? fallback : Math.min(Math.max(n, 1), MAX_PAGE);
}

export function registryService(deps: RegistryDeps): Service {
  const { models, box, allow, changes, locks } = deps;
  const now = deps.now ?? (() => new Date());

  const checkWorkspace = (v: Violations, workspaceId: string) => {
    const p = workspaceIdProblem(workspaceId);
    if (p) v.add('workspace_id', p);
  };
  const checkUrl = (v: Violations, url: string) => {
    const p = urlRefusal(url, allow);
    if (p) v.add('url', p);
  };
  const checkEndpointId = (v: Violations, endpointId: string) => {
    if (!endpointId) v.add('endpoint_id', 'is required');
  };
  const checkDescription = (v: Violations, description: string) => {
    if (description.length > MAX_DESCRIPTION) v.add('description', `must be at most ${MAX_DESCRIPTION} characters`);
  };

  /**
   * Validates a subscription; catalog checks (unknown or deprecated types) need the store.
   * `current` are the types the endpoint already subscribes to: a deprecated type among them may
   * stay (it remains deliverable to existing subscriptions); it may not be newly added.
   */
  async function checkSubscription(
    v: Violations,
    sub: endpointsV1.Subscription | undefined,
    field: string,
    required: boolean,
    current: readonly string[] = [],
  ): Promise<{ all: boolean; types: string[] }> {
    const sel = sub?.selection;
    if (!sel) {
      if (required) v.add(field, 'is required: set all_events or event_types');
      return { all: true, types: [] };
    }
    if (sel.$case === 'allEvents') {
      if (!sel.value) v.add(`${field}.all_events`, 'must be true when set; to receive chosen types, set event_types instead');
      return { all: true, types: [] };
    }
    const names = [...new Set(sel.value.names)];
    if (names.length === 0) v.add(`${field}.event_types.names`, 'must list at least one event type (or set all_events)');
    if (names.length > MAX_SUBSCRIBED_TYPES) v.add(`${field}.event_types.names`, `must list at most ${MAX_SUBSCRIBED_TYPES} types`);
    const bad = names.filter((n) => eventTypeProblem(n) !== undefined);
    if (bad.length > 0) v.add(`${field}.event_types.names`, `malformed event type names: ${bad.map((n) => JSON.stringify(n)).join(', ')}`);
    if (names.length > 0 && bad.length === 0 && names.length <= MAX_SUBSCRIBED_TYPES) {
      const found = await models.eventTypes.find({ _id: { $in: names } }, { _id: 1, deprecated: 1 }).lean<Pick<EventTypeDoc, "_id" | "deprecated">[]>();
      const byName = new Map(found.map((t) => [t._id, t]));
      const unknown = names.filter((n) => !byName.has(n));
      const deprecated = names.filter((n) => byName.get(n)?.deprecated && !current.includes(n));
      if (unknown.length > 0) v.add(`${field}.event_types.names`, `unknown event types (create them in the catalog first): ${unknown.join(', ')}`);
      if (deprecated.length > 0) v.add(`${field}.event_types.names`, `deprecated event types cannot be newly subscribed: ${deprecated.join(', ')}`);
    }
    return { all: false, types: names };
  }

  async function findEndpoint(workspaceId: string, endpointId: string): Promise<EndpointDoc> {
    const v = new Violations();
    checkWorkspace(v, workspaceId);
    checkEndpointId(v, endpointId);
    v.throwIfAny();
    const doc = await models.endpoints.findOne({ _id: endpointId, workspaceId }).lean<EndpointDoc>();
    if (!doc) throw notFound(`endpoint ${endpointId} not found in workspace ${workspaceId}`);
    return doc;
  }

  /**
   * Read-modify-write of one endpoint under its writer lock (endpoint-locks.ts: FerretDB's
   * conditional updates are not atomic), so concurrent callers are applied one after another
   * instead of failed or lost. `change` computes the fields to set from the current document, or
   * undefined for "nothing to do". A deleted endpoint answers NOT_FOUND. Reports the change.
   */
  async function mutateEndpoint(
    workspaceId: string,
    endpointId: string,
    change: (current: EndpointDoc) => Partial<EndpointDoc> | undefined,
  ): Promise<EndpointDoc> {
    await findEndpoint(workspaceId, endpointId); // validation and NOT_FOUND before taking the lock
    const updated = await locks.withLock(endpointId, async () => {
      for (let attempt = 1; ; attempt++) {
        const current = await findEndpoint(workspaceId, endpointId);
        const set = change(current);
        if (set === undefined) return { doc: current, changed: false };
        // The version filter is the second line of defence (a writer that bypassed the lock).
        const doc = await models.endpoints
          .findOneAndUpdate(
            { _id: current._id, workspaceId: current.workspaceId, version: current.version },
            { $set: { ...set, updatedAt: now() }, $inc: { version: 1 } },
            { new: true },
          )
          .lean<EndpointDoc>();
        if (doc) return { doc, changed: true };
        if (attempt >= MAX_UPDATE_ATTEMPTS) throw aborted(`endpoint ${endpointId} is being changed concurrently; retry`);
      }
    });
    if (updated.changed) {
      await changes.endpointChanged({ workspaceId: updated.doc.workspaceId, endpointId: updated.doc._id, version: updated.doc.version, deleted: false });
    }
    return updated.doc;
  }

  function sealNew(workspaceId: string, endpointId: string): { plain: string; sealed: StoredSecret } {
    const plain = generateSecret();
    return { plain, sealed: { ...box.seal(plain, secretAad(workspaceId, endpointId)), expiresAt: null } };
  }

  async function findEventType(name: string): Promise<EventTypeDoc> {
    const p = eventTypeProblem(name);
    if (p) throw invalidField('name', p);
    const doc = await models.eventTypes.findById(name).lean<EventTypeDoc>();
    if (!doc) throw notFound(`event type ${name} not found in the catalog`);
    return doc;
  }

  function checkSchemaAndExample(v: Violations, schemaJson: string, exampleJson: string): void {
    if (Buffer.byteLength(schemaJson) > MAX_SCHEMA_BYTES) {
      v.add('schema_json', `must be at most ${MAX_SCHEMA_BYTES} bytes`);
      return;
    }
    const schema = parseJson(schemaJson);
    if (!schema.ok) return void v.add('schema_json', schema.reason);
    let validate;
    try {
      validate = compileSchema(schema.value);
    } catch (err) {
      return void v.add('schema_json', (err as Error).message);
    }
    const example = parseJson(exampleJson);
    if (!example.ok) return void v.add('example_json', example.reason);
    const problems = validate(example.value);
    if (problems.length > 0) v.add('example_json', `does not match schema_json: ${problems.map((p) => `${p.path || '/'} ${p.message}`).join('; ')}`);
  }

  return {
    async createEndpoint(req) {
      const v = new Violations();
      checkWorkspace(v, req.workspaceId);
      checkUrl(v, req.url);
      checkDescription(v, req.description);
      if (req.requestId.length > MAX_REQUEST_ID) v.add('request_id', `must be at most ${MAX_REQUEST_ID} characters`);
      const subscription = await checkSubscription(v, req.subscription, 'subscription', false);
      v.throwIfAny();

      const requestId = req.requestId ? storedRequestId(req.requestId) : undefined;
      if (requestId) {
        const existing = await models.endpoints.findOne({ workspaceId: req.workspaceId, requestId }).lean<EndpointDoc>();
        if (existing) return replayCreate(existing, req);
      }
      const id = timeOrderedId('ep');
      const { plain, sealed } = sealNew(req.workspaceId, id);
      const at = now();
      const doc: EndpointDoc = {
        _id: id,
        workspaceId: req.workspaceId,
        url: req.url,
        description: req.description,
        enabled: true,
        disabledReason: '',
        subscription,
        standardWebhooks: req.standardWebhooks,
        secrets: [sealed],
        requestId: requestId ?? id,
        createdAt: at,
        updatedAt: at,
        version: 1,
      };
      try {
        await models.endpoints.create(doc);
      } catch (err) {
        // Two retries of one create raced: the loser answers like a replay.
        if (isDuplicateKey(err) && requestId) {
          const existing = await models.endpoints.findOne({ workspaceId: req.workspaceId, requestId }).lean<EndpointDoc>();
          if (existing) return replayCreate(existing, req);
        }
        throw err;
      }
      await changes.endpointChanged({ workspaceId: doc.workspaceId, endpointId: id, version: 1, deleted: false });
      return { endpoint: toEndpoint(doc), secret: plain };
    },

    async getEndpoint(req) {
      return { endpoint: toEndpoint(await findEndpoint(req.workspaceId, req.endpointId)) };
    },

    async listEndpoints(req) {
      const v = new Violations();
      checkWorkspace(v, req.workspaceId);
      const size = pageSize(req.pageSize, 50, v);
      const after = decodeToken(req.pageToken, v);
      v.throwIfAny();
      const filter = after ? { workspaceId: req.workspaceId, _id: { $gt: after } } : { workspaceId: req.workspaceId };
      // Ids are time-ordered, so _id order is creation order and new endpoints land on later pages.
      const docs = await models.endpoints.find(filter).sort({ _id: 1 }).limit(size + 1).lean<EndpointDoc[]>();
      const page = docs.slice(0, size);
      return { endpoints: page.map(toEndpoint), nextPageToken: docs.length > size ? encodeToken(page[page.length - 1]!._id) : '' };
    },

    async updateEndpoint(req) {
      const v = new Violations();
      const paths = req.updateMask ?? [];
      const allowed = ['url', 'description', 'enabled', 'standard_webhooks'];
      if (paths.length === 0) v.add('update_mask', `must name at least one of ${allowed.join(', ')}`);
      const unknown = paths.filter((p) => !allowed.includes(p));
      if (unknown.length > 0) v.add('update_mask', `unknown paths ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`);
      if (paths.includes('url')) checkUrl(v, req.url);
      if (paths.includes('description')) checkDescription(v, req.description);
      checkWorkspace(v, req.workspaceId);
      checkEndpointId(v, req.endpointId);
      v.throwIfAny();
      const set: Partial<EndpointDoc> = {};
      if (paths.includes('url')) set.url = req.url;
      if (paths.includes('description')) set.description = req.description;
      if (paths.includes('standard_webhooks')) set.standardWebhooks = req.standardWebhooks;
      if (paths.includes('enabled')) {
        set.enabled = req.enabled;
        set.disabledReason = req.enabled ? '' : 'manual';
      }
      return { endpoint: toEndpoint(await mutateEndpoint(req.workspaceId, req.endpointId, () => set)) };
    },

    async deleteEndpoint(req) {
      // IDEMPOTENT in the contract, and libs/client retries it after a lost answer: deleting an
      // endpoint this workspace already deleted succeeds; an id it never had is NOT_FOUND.
      const alreadyDeleted = () => models.tombstones.exists({ _id: req.endpointId, workspaceId: req.workspaceId });
      const existing = await findEndpoint(req.workspaceId, req.endpointId).catch(async (err: unknown) => {
        if (err instanceof ServiceError && err.code === status.NOT_FOUND && (await alreadyDeleted())) return undefined;
        throw err;
      });
      if (!existing) return {};
      const current = await locks.withLock(req.endpointId, async () => {
        // Read again under the lock: the version published is the last one written.
        const doc = await models.endpoints.findOne({ _id: req.endpointId, workspaceId: req.workspaceId }).lean<EndpointDoc>();
        if (!doc) {
          if (await alreadyDeleted()) return undefined; // a concurrent delete won
          throw notFound(`endpoint ${req.endpointId} not found in workspace ${req.workspaceId}`);
        }
        // Tombstone first: a retry after a crash between the two writes finds the endpoint and deletes it again.
        await models.tombstones.updateOne({ _id: doc._id }, { $set: { workspaceId: doc.workspaceId, deletedAt: now() } }, { upsert: true });
        await models.endpoints.deleteOne({ _id: doc._id, workspaceId: doc.workspaceId });
        return doc;
      });
      if (current) await changes.endpointChanged({ workspaceId: current.workspaceId, endpointId: current._id, version: current.version + 1, deleted: true });
      return {};
    },

    async updateEndpointSubscription(req) {
      const v = new Violations();
      checkWorkspace(v, req.workspaceId);
      checkEndpointId(v, req.endpointId);
      if (!req.subscription?.selection) v.add('subscription', 'is required: set all_events or event_types');
      v.throwIfAny();
      // The catalog check needs the current subscription (deprecated types may stay, not be added).
      const current = await findEndpoint(req.workspaceId, req.endpointId);
      const subscription = await checkSubscription(v, req.subscription, 'subscription', true, current.subscription.all ? [] : current.subscription.types);
      v.throwIfAny();
      return { endpoint: toEndpoint(await mutateEndpoint(req.workspaceId, req.endpointId, () => ({ subscription }))) };
    },

    async rotateEndpointSecret(req) {
      const v = new Violations();
      checkWorkspace(v, req.workspaceId);
      checkEndpointId(v, req.endpointId);
      const ttl = req.oldSecretTtl;
      // Duration: seconds (int64 as a string) plus nanos of the same sign; BigInt keeps huge values exact.
      const ttlNanos = ttl ? BigInt(ttl.seconds) * 1_000_000_000n + BigInt(ttl.nanos) : 0n;
      if (ttlNanos < 0n || ttlNanos > BigInt(MAX_GRACE_MS) * 1_000_000n) v.add('old_secret_ttl', `must be between 0 and 7 days (${MAX_GRACE_MS / 1000}s)`);
      v.throwIfAny();
      const ttlMs = Number(ttlNanos / 1_000_000n);
      const plain = generateSecret();
      const sealed: StoredSecret = { ...box.seal(plain, secretAad(req.workspaceId, req.endpointId)), expiresAt: null };
      const updated = await mutateEndpoint(req.workspaceId, req.endpointId, (current) => {
        const at = now();
        // 0 (the default) means the secret is compromised: every earlier secret stops at once,
        // including those still in an earlier grace period. Otherwise the current secret gets the
        // grace period and earlier ones keep theirs; expired ones are dropped.
        const kept = ttlMs > 0 ? current.secrets.filter((s) => s.expiresAt !== null && s.expiresAt > at) : [];
        const previous = current.secrets.find((s) => s.expiresAt === null);
        if (previous && ttlMs > 0) kept.push({ ...previous, expiresAt: new Date(at.getTime() + ttlMs) });
        return { secrets: [sealed, ...kept.sort((a, b) => b.expiresAt!.getTime() - a.expiresAt!.getTime())] };
      });
      return { endpoint: toEndpoint(updated), secret: plain };
    },

    async disableEndpoint(req) {
      const v = new Violations();
      checkWorkspace(v, req.workspaceId);
      checkEndpointId(v, req.endpointId);
      if (!['gone', 'failing', 'manual'].includes(req.reason)) v.add('reason', 'must be "gone", "failing" or "manual"');
      v.throwIfAny();
      const updated = await mutateEndpoint(req.workspaceId, req.endpointId, (current) => (current.enabled ? { enabled: false, disabledReason: req.reason } : undefined));
      return { endpoint: toEndpoint(updated) };
    },

    async createEventType(req) {
      const v = new Violations();
      const p = eventTypeProblem(req.name);
      if (p) v.add('name', p);
      checkDescription(v, req.description);
      checkSchemaAndExample(v, req.schemaJson, req.exampleJson);
      v.throwIfAny();
      const at = now();
      const doc: EventTypeDoc = { _id: req.name, description: req.description, schemaJson: req.schemaJson, exampleJson: req.exampleJson, deprecated: false, version: 1, createdAt: at, updatedAt: at };
      try {
        await models.eventTypes.create(doc);
      } catch (err) {
        if (isDuplicateKey(err)) throw alreadyExists(`event type ${req.name} already exists; use UpdateEventType to change it`);
        throw err;
      }
      return { eventType: toEventType(doc) };
    },

    async getEventType(req) {
      return { eventType: toEventType(await findEventType(req.name)) };
    },

    async listEventTypes(req) {
      const v = new Violations();
      const size = pageSize(req.pageSize, 100, v);
      const after = decodeToken(req.pageToken, v);
      v.throwIfAny();
      const filter: Record<string, unknown> = {};
      if (after) filter._id = { $gt: after };
      if (!req.includeDeprecated) filter.deprecated = false;
      const docs = await models.eventTypes.find(filter).sort({ _id: 1 }).limit(size + 1).lean<EventTypeDoc[]>();
      const page = docs.slice(0, size);
      return { eventTypes: page.map(toEventType), nextPageToken: docs.length > size ? encodeToken(page[page.length - 1]!._id) : '' };
    },

    async updateEventType(req) {
      const v = new Violations();
      const paths = req.updateMask ?? [];
      const allowed = ['description', 'schema_json', 'example_json'];
      if (paths.length === 0) v.add('update_mask', `must name at least one of ${allowed.join(', ')}`);
      const unknown = paths.filter((p) => !allowed.includes(p));
      if (unknown.length > 0) v.add('update_mask', `unknown paths ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`);
      if (paths.includes('description')) checkDescription(v, req.description);
      v.throwIfAny();
      const current = await findEventType(req.name);
      const next = {
        description: paths.includes('description') ? req.description : current.description,
        schemaJson: paths.includes('schema_json') ? req.schemaJson : current.schemaJson,
        exampleJson: paths.includes('example_json') ? req.exampleJson : current.exampleJson,
      };
      checkSchemaAndExample(v, next.schemaJson, next.exampleJson);
      v.throwIfAny();
      const updated = await models.eventTypes
        .findOneAndUpdate({ _id: current._id, version: current.version }, { $set: { ...next, updatedAt: now() }, $inc: { version: 1 } }, { new: true })
        .lean<EventTypeDoc>();
      if (!updated) throw failedPrecondition(`event type ${req.name} changed concurrently; read it again and retry`);
      return { eventType: toEventType(updated) };
    },

    async deprecateEventType(req) {
      const current = await findEventType(req.name);
      if (current.deprecated) return { eventType: toEventType(current) };
      const updated = await models.eventTypes.findOneAndUpdate({ _id: current._id }, { $set: { deprecated: true, updatedAt: now() } }, { new: true }).lean<EventTypeDoc>();
      return { eventType: toEventType(updated ?? current) };
    },

    async undeprecateEventType(req) {
      const current = await findEventType(req.name);
      if (!current.deprecated) return { eventType: toEventType(current) };
      const updated = await models.eventTypes.findOneAndUpdate({ _id: current._id }, { $set: { deprecated: false, updatedAt: now() } }, { new: true }).lean<EventTypeDoc>();
      return { eventType: toEventType(updated ?? current) };
    },

    async resolveSubscribers(req) {
      const v = new Violations();
      checkWorkspace(v, req.workspaceId);
      const p = eventTypeProblem(req.eventType);
      if (p) v.add('event_type', p);
      v.throwIfAny();
      const filter = req.endpointId
        ? { workspaceId: req.workspaceId, enabled: true, _id: req.endpointId }
        : { workspaceId: req.workspaceId, enabled: true, $or: [{ 'subscription.all': true }, { 'subscription.types': req.eventType }] };
      const docs = await models.endpoints
        .find(filter)
        .sort({ _id: 1 })
        .lean<EndpointDoc[]>();
      const at = now();
      return {
        subscribers: docs.map((d) => ({
          endpointId: d._id,
          url: d.url,
          standardWebhooks: d.standardWebhooks,
          version: String(d.version),
          secrets: d.secrets
            .filter((s) => s.expiresAt === null || s.expiresAt > at)
            .sort((a, b) => (a.expiresAt === null ? -1 : b.expiresAt === null ? 1 : b.expiresAt.getTime() - a.expiresAt.getTime()))
            .map((s) => ({ secret: box.open(s, secretAad(d.workspaceId, d._id)), expireTime: s.expiresAt ?? undefined })),
        })),
      };
    },
  };

  /** A retried create: same endpoint, same secret, as long as the request is the same one. */
  function replayCreate(existing: EndpointDoc, req: endpointsV1.CreateEndpointRequest): endpointsV1.CreateEndpointResponse {
    if (existing.url !== req.url) throw alreadyExists(`request_id ${req.requestId} was already used for endpoint ${existing._id} with another URL`);
    const current = existing.secrets.find((s) => s.expiresAt === null);
    if (!current || existing.version !== 1) {
      throw failedPrecondition(`endpoint ${existing._id} from request_id ${req.requestId} has changed since; its secret is no longer shown`);
    }
    return { endpoint: toEndpoint(existing), secret: box.open(current, secretAad(existing.workspaceId, existing._id)) };
  }
}

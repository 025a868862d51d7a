// The endpoint lifecycle against the real database and broker: create, get, list, update (field
// mask), subscriptions, rotation, disable, delete, resolve, idempotent create, tenancy, the change
// topic and the logs.
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { Consumer, KafkaMessage } from 'kafkajs';
import { createServiceClient, DEFAULT_RETRY_POLICY, type UnaryTransport } from '@hookline/client';
import { endpointsV1 } from '@hookline/proto';
import { eventually, uniquePrefix } from '@hookline/testing';
import {
  allEvents,
  calls,
  expectCode,
  expectInvalid,
  OBJECT_EXAMPLE,
  OBJECT_SCHEMA,
  rpcError,
  startRegistry,
  testKafka,
  types,
  type Calls,
  type RegistryHarness,
} from './harness';

jest.setTimeout(60_000);

/** A transport whose first call reaches the server and takes effect, but whose answer is lost. */
function lossyFirstAnswer(client: grpc.Client): UnaryTransport & { attempts: number } {
  const t = {
    attempts: 0,
    makeUnaryRequest<Req, Res>(method: string, serialize: (v: Req) => Buffer, deserialize: (v: Buffer) => Res, arg: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, v?: Res) => void) {
      const first = ++t.attempts === 1;
      return client.makeUnaryRequest(method, serialize, deserialize, arg, md, opts, (err, value) => {
        if (first && !err) return cb(Object.assign(new Error('deadline exceeded'), { code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded', metadata: new grpc.Metadata() }));
        cb(err, value);
      });
    },
  };
  return t;
}

const SECRET_RE = /^whsec_[A-Za-z0-9+/]{43}=$/;

describe('endpoint-registry endpoints', () => {
  let h: RegistryHarness;
  let c: Calls;
  let consumer: Consumer;
  const changes: KafkaMessage[] = [];
  /** Every plaintext secret the registry handed out, to search the logs for. */
  const issued: string[] = [];
  const ws = `ws-${uniquePrefix('a')}`;
  const other = `ws-${uniquePrefix('b')}`;
  let url = 0;
  const nextUrl = () => `https://hooks${++url}.example.com/in`;

  const create = async (r: Partial<endpointsV1.CreateEndpointRequest> = {}) => {
    const res = await c.createEndpoint({ workspaceId: ws, url: nextUrl(), ...r });
    issued.push(res.secret);
    return res;
  };
  const rotate = async (r: Partial<endpointsV1.RotateEndpointSecretRequest>) => {
    const res = await c.rotateEndpointSecret({ workspaceId: ws, ...r });
    issued.push(res.secret);
    return res;
  };

  beforeAll(async () => {
    h = await startRegistry({ label: 'ep' });
    c = calls(h.client);
    for (const name of ['invoice.paid', 'invoice.voided', 'customer.created', 'legacy.thing']) {
      await c.createEventType({ name, description: name, schemaJson: OBJECT_SCHEMA, exampleJson: OBJECT_EXAMPLE });
    }
    // A raw consumer on the change topic, from the beginning: what a dispatcher would see.
    consumer = testKafka(h.infra).consumer({ groupId: `${h.prefix}-changes-test`, sessionTimeout: 30_000 });
    await consumer.connect();
    await consumer.subscribe({ topic: h.config.kafka.topics.endpointChanges.name, fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void changes.push(message) });
  });

  afterAll(async () => {
    await consumer?.disconnect();
    await h?.stop();
  });

  describe('CreateEndpoint and GetEndpoint', () => {
    it('creates an enabled all-events endpoint and shows a whsec_ secret of 32 random bytes once', async () => {
      const res = await create({ description: 'billing', standardWebhooks: true });
      expect(res.secret).toMatch(SECRET_RE);
      expect(Buffer.from(res.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
      const ep = res.endpoint!;
      expect(ep).toMatchObject({ workspaceId: ws, description: 'billing', enabled: true, disabledReason: '', standardWebhooks: true, version: '1' });
      expect(ep.id).toMatch(/^ep_[0-9a-f]{32}$/);
      expect(ep.subscription).toEqual(allEvents());
      expect(ep.createTime).toBeInstanceOf(Date);

      const got = await c.getEndpoint({ workspaceId: ws, endpointId: ep.id });
      expect(got.endpoint).toEqual(ep);
      // The read answer carries no secret anywhere, in any encoding.
      const wire = Buffer.from(endpointsV1.GetEndpointResponse.encode(got).finish());
      expect(wire.includes(res.secret)).toBe(false);
      expect(JSON.stringify(endpointsV1.GetEndpointResponse.toJSON(got))).not.toContain('whsec_');
    });

    it('creates an endpoint subscribed to catalog types', async () => {
      const res = await create({ subscription: types('invoice.paid', 'invoice.voided', 'invoice.paid') });
      expect(res.endpoint!.subscription).toEqual(types('invoice.paid', 'invoice.voided'));
    });

    it('gives each endpoint its own secret', async () => {
      const [a, b] = await Promise.all([create(), create()]);
      expect(a.secret).not.toBe(b.secret);
      expect(a.endpoint!.id).not.toBe(b.endpoint!.id);
    });

    it('refuses a missing or malformed workspace_id', async () => {
      await expectInvalid(c.createEndpoint({ workspaceId: '', url: nextUrl() }), 'workspace_id', /required/);
      await expectInvalid(c.createEndpoint({ workspaceId: 'a b', url: nextUrl() }), 'workspace_id', /A-Z a-z 0-9/);
      await expectInvalid(c.createEndpoint({ workspaceId: 'x'.repeat(129), url: nextUrl() }), 'workspace_id');
    });

    it('refuses an over-long description and request_id', async () => {
      await expectInvalid(create({ description: 'd'.repeat(1025) }), 'description', /at most 1024/);
      await expectInvalid(create({ requestId: 'r'.repeat(129) }), 'request_id', /at most 128/);
    });

    it('refuses bad subscriptions, naming the unknown and malformed types', async () => {
      await expectInvalid(create({ subscription: { selection: { $case: 'allEvents', value: false } } }), 'subscription.all_events');
      await expectInvalid(create({ subscription: types() }), 'subscription.event_types.names', /at least one/);
      await expectInvalid(create({ subscription: types('Invoice Paid') }), 'subscription.event_types.names', /"Invoice Paid"/);
      const why = await expectInvalid(create({ subscription: types('invoice.paid', 'no.such_type', 'nor.this') }), 'subscription.event_types.names', /unknown/);
      expect(why).toContain('no.such_type');
      expect(why).toContain('nor.this');
      expect(why).not.toContain('invoice.paid');
    });

    it('lists every problem of one request in one answer', async () => {
      const err = await rpcError(c.createEndpoint({ workspaceId: '', url: 'http://example.com', description: 'd'.repeat(2000) }));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      for (const field of ['workspace_id', 'url', 'description']) expect(err.details).toContain(`${field}: `);
    });

    it('answers NOT_FOUND for a missing endpoint and INVALID_ARGUMENT for a missing id', async () => {
      await expectCode(c.getEndpoint({ workspaceId: ws, endpointId: 'ep_00000000000000000000000000000000' }), status.NOT_FOUND, /ep_0{32}/);
      await expectInvalid(c.getEndpoint({ workspaceId: ws, endpointId: '' }), 'endpoint_id', /required/);
      await expectInvalid(c.getEndpoint({ workspaceId: '', endpointId: 'ep_1' }), 'workspace_id');
    });
  });

  describe('idempotent create', () => {
    it('returns the same endpoint and the same secret for a retried request_id', async () => {
      const first = await create({ requestId: 'req-1', description: 'once' });
      const again = await create({ requestId: 'req-1', url: first.endpoint!.url, description: 'once' });
      expect(again.endpoint!.id).toBe(first.endpoint!.id);
      expect(again.secret).toBe(first.secret);
      const page = await c.listEndpoints({ workspaceId: ws, pageSize: 500 });
      expect(page.endpoints.filter((e) => e.id === first.endpoint!.id)).toHaveLength(1);
      expect(page.endpoints.filter((e) => e.description === 'once')).toHaveLength(1);
    });

    it('makes one endpoint out of concurrent retries', async () => {
      const u = nextUrl();
      const results = await Promise.all(Array.from({ length: 5 }, () => create({ requestId: 'req-race', url: u })));
      expect(new Set(results.map((r) => r.endpoint!.id)).size).toBe(1);
      expect(new Set(results.map((r) => r.secret)).size).toBe(1);
    });

    it('scopes request ids by workspace', async () => {
      const u = nextUrl();
      const a = await create({ requestId: 'req-shared', url: u });
      const b = await c.createEndpoint({ workspaceId: other, requestId: 'req-shared', url: u });
      issued.push(b.secret);
      expect(b.endpoint!.id).not.toBe(a.endpoint!.id);
      expect(b.secret).not.toBe(a.secret);
    });

    it('refuses a reused request_id with another URL (ALREADY_EXISTS)', async () => {
      await create({ requestId: 'req-2' });
      await expectCode(create({ requestId: 'req-2' }), status.ALREADY_EXISTS, /request_id/);
    });

    it('does not show the secret again once the endpoint has changed', async () => {
      const first = await create({ requestId: 'req-3' });
      await rotate({ endpointId: first.endpoint!.id });
      await expectCode(create({ requestId: 'req-3', url: first.endpoint!.url }), status.FAILED_PRECONDITION, /request_id/);
    });

    it("never hands out another endpoint's secret for a request_id equal to its id", async () => {
      // Endpoints created without a request id must not be reachable through one.
      const victim = await create();
      const res = await create({ requestId: victim.endpoint!.id, url: victim.endpoint!.url });
      expect(res.endpoint!.id).not.toBe(victim.endpoint!.id);
      expect(res.secret).not.toBe(victim.secret);
    });
  });

  describe('UpdateEndpoint', () => {
    it('changes only the fields in update_mask; an empty description in the mask clears it', async () => {
      const { endpoint } = await create({ description: 'keep me' });
      const id = endpoint!.id;
      // Not in the mask: description '' is "unset", not "empty".
      const a = await c.updateEndpoint({ workspaceId: ws, endpointId: id, url: 'https://moved.example.com/x', description: '', updateMask: ['url'] });
      expect(a.endpoint).toMatchObject({ url: 'https://moved.example.com/x', description: 'keep me', version: '2' });
      const b = await c.updateEndpoint({ workspaceId: ws, endpointId: id, description: '', updateMask: ['description'] });
      expect(b.endpoint).toMatchObject({ url: 'https://moved.example.com/x', description: '', version: '3' });
      expect(b.endpoint!.updateTime!.getTime()).toBeGreaterThanOrEqual(a.endpoint!.updateTime!.getTime());
      expect(b.endpoint!.createTime).toEqual(endpoint!.createTime);
      const got = await c.getEndpoint({ workspaceId: ws, endpointId: id });
      expect(got.endpoint).toEqual(b.endpoint);
    });

    it('disables and re-enables, with the reason', async () => {
      const { endpoint } = await create();
      const off = await c.updateEndpoint({ workspaceId: ws, endpointId: endpoint!.id, enabled: false, updateMask: ['enabled'] });
      expect(off.endpoint).toMatchObject({ enabled: false, disabledReason: 'manual' });
      const on = await c.updateEndpoint({ workspaceId: ws, endpointId: endpoint!.id, enabled: true, updateMask: ['enabled', 'standard_webhooks'], standardWebhooks: true });
      expect(on.endpoint).toMatchObject({ enabled: true, disabledReason: '', standardWebhooks: true });
    });

    it('never returns a secret', async () => {
      const res = await create();
      const up = await c.updateEndpoint({ workspaceId: ws, endpointId: res.endpoint!.id, description: 'x', updateMask: ['description'] });
      expect(Buffer.from(endpointsV1.UpdateEndpointResponse.encode(up).finish()).includes(res.secret)).toBe(false);
    });

    it('refuses an empty or unknown update_mask and an invalid new url', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      await expectInvalid(c.updateEndpoint({ workspaceId: ws, endpointId: id, description: 'x' }), 'update_mask', /at least one/);
      await expectInvalid(c.updateEndpoint({ workspaceId: ws, endpointId: id, updateMask: ['secret'] }), 'update_mask', /secret/);
      await expectInvalid(c.updateEndpoint({ workspaceId: ws, endpointId: id, url: 'http://example.com/', updateMask: ['url'] }), 'url', /https/);
      await expectInvalid(c.updateEndpoint({ workspaceId: ws, endpointId: id, url: '', updateMask: ['url'] }), 'url', /required/);
      await expectInvalid(c.updateEndpoint({ workspaceId: ws, endpointId: id, description: 'd'.repeat(1025), updateMask: ['description'] }), 'description');
      const got = await c.getEndpoint({ workspaceId: ws, endpointId: id });
      expect(got.endpoint!.version).toBe('1');
    });

    it('applies concurrent updates one after another instead of failing them', async () => {
      const { endpoint } = await create();
      const n = 5;
      const results = await Promise.allSettled(
        Array.from({ length: n }, (_, i) => c.updateEndpoint({ workspaceId: ws, endpointId: endpoint!.id, description: `d${i}`, updateMask: ['description'] })),
      );
      expect(results.map((r) => r.status)).toEqual(Array(n).fill('fulfilled'));
      const got = await c.getEndpoint({ workspaceId: ws, endpointId: endpoint!.id });
      expect(got.endpoint!.version).toBe(String(1 + n));
    });
  });

  describe('UpdateEndpointSubscription and the catalog', () => {
    it('switches between a type list and all events', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      const a = await c.updateEndpointSubscription({ workspaceId: ws, endpointId: id, subscription: types('customer.created') });
      expect(a.endpoint).toMatchObject({ subscription: types('customer.created'), version: '2' });
      const b = await c.updateEndpointSubscription({ workspaceId: ws, endpointId: id, subscription: allEvents() });
      expect(b.endpoint).toMatchObject({ subscription: allEvents(), version: '3' });
    });

    it('requires a subscription and names unknown types', async () => {
      const { endpoint } = await create();
      await expectInvalid(c.updateEndpointSubscription({ workspaceId: ws, endpointId: endpoint!.id }), 'subscription', /required/);
      const why = await expectInvalid(c.updateEndpointSubscription({ workspaceId: ws, endpointId: endpoint!.id, subscription: types('ghost.type') }), 'subscription.event_types.names');
      expect(why).toContain('ghost.type');
    });

    it('keeps delivering a deprecated type to existing subscribers but refuses new subscriptions to it', async () => {
      await c.createEventType({ name: 'old.style', description: '', schemaJson: OBJECT_SCHEMA, exampleJson: OBJECT_EXAMPLE });
      const { endpoint } = await create({ subscription: types('old.style', 'invoice.paid') });
      const id = endpoint!.id;
      await c.deprecateEventType({ name: 'old.style' });

      const resolved = await c.resolveSubscribers({ workspaceId: ws, eventType: 'old.style' });
      expect(resolved.subscribers.map((s) => s.endpointId)).toContain(id);

      const why = await expectInvalid(create({ subscription: types('old.style') }), 'subscription.event_types.names', /deprecated/);
      expect(why).toContain('old.style');
      const { endpoint: fresh } = await create({ subscription: types('invoice.paid') });
      await expectInvalid(
        c.updateEndpointSubscription({ workspaceId: ws, endpointId: fresh!.id, subscription: types('invoice.paid', 'old.style') }),
        'subscription.event_types.names',
        /deprecated.*old\.style/,
      );
      // Already subscribed: editing the rest of the list keeps it.
      const kept = await c.updateEndpointSubscription({ workspaceId: ws, endpointId: id, subscription: types('old.style', 'invoice.paid', 'customer.created') });
      expect(kept.endpoint!.subscription).toEqual(types('old.style', 'invoice.paid', 'customer.created'));
    });
  });

  describe('RotateEndpointSecret', () => {
    it('replaces the secret at once by default', async () => {
      const created = await create({ subscription: types('invoice.voided') });
      const id = created.endpoint!.id;
      const rotated = await rotate({ endpointId: id });
      expect(rotated.secret).toMatch(SECRET_RE);
      expect(rotated.secret).not.toBe(created.secret);
      expect(rotated.endpoint).toMatchObject({ id, version: '2' });
      const r = await c.resolveSubscribers({ workspaceId: ws, eventType: 'invoice.voided', endpointId: id });
      expect(r.subscribers[0]!.secrets).toEqual([{ secret: rotated.secret, expireTime: undefined }]);
    });

    it('keeps the old secret valid for the chosen grace period, current secret first', async () => {
      const created = await create();
      const id = created.endpoint!.id;
      const before = Date.now();
      const rotated = await rotate({ endpointId: id, oldSecretTtl: { seconds: '3600', nanos: 0 } });
      const r = await c.resolveSubscribers({ workspaceId: ws, eventType: 'invoice.paid', endpointId: id });
      const secrets = r.subscribers[0]!.secrets;
      expect(secrets.map((s) => s.secret)).toEqual([rotated.secret, created.secret]);
      expect(secrets[0]!.expireTime).toBeUndefined();
      const expiry = secrets[1]!.expireTime!.getTime();
      expect(expiry).toBeGreaterThanOrEqual(before + 3600_000 - 1000);
      expect(expiry).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);

      // A second rotation with grace keeps both previous secrets within their periods...
      const third = await rotate({ endpointId: id, oldSecretTtl: { seconds: '60', nanos: 0 } });
      const r2 = await c.resolveSubscribers({ workspaceId: ws, eventType: 'invoice.paid', endpointId: id });
      expect(r2.subscribers[0]!.secrets.map((s) => s.secret)).toEqual([third.secret, created.secret, rotated.secret]);
      // ...and an immediate rotation (the secret leaked) revokes every earlier secret.
      const fourth = await rotate({ endpointId: id });
      const r3 = await c.resolveSubscribers({ workspaceId: ws, eventType: 'invoice.paid', endpointId: id });
      expect(r3.subscribers[0]!.secrets.map((s) => s.secret)).toEqual([fourth.secret]);
    });

    it('accepts exactly 7 days and refuses more, or a negative period', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      await rotate({ endpointId: id, oldSecretTtl: { seconds: String(7 * 24 * 3600), nanos: 0 } });
      await expectInvalid(rotate({ endpointId: id, oldSecretTtl: { seconds: String(7 * 24 * 3600), nanos: 1_000_000 } }), 'old_secret_ttl', /7 days/);
      await expectInvalid(rotate({ endpointId: id, oldSecretTtl: { seconds: '-1', nanos: 0 } }), 'old_secret_ttl', /7 days/);
      await expectInvalid(rotate({ endpointId: id, oldSecretTtl: { seconds: '99999999999', nanos: 0 } }), 'old_secret_ttl');
    });
  });

  describe('DisableEndpoint and DeleteEndpoint', () => {
    it('disables with a platform reason, idempotently, and validates the reason', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      await expectInvalid(c.disableEndpoint({ workspaceId: ws, endpointId: id, reason: 'bored' }), 'reason');
      const a = await c.disableEndpoint({ workspaceId: ws, endpointId: id, reason: 'gone' });
      expect(a.endpoint).toMatchObject({ enabled: false, disabledReason: 'gone', version: '2' });
      const b = await c.disableEndpoint({ workspaceId: ws, endpointId: id, reason: 'gone' });
      expect(b.endpoint).toMatchObject({ enabled: false, version: '2' });
    });

    it('deletes: afterwards the endpoint is gone for every call', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      await c.deleteEndpoint({ workspaceId: ws, endpointId: id });
      await expectCode(c.getEndpoint({ workspaceId: ws, endpointId: id }), status.NOT_FOUND);
      await expectCode(rotate({ endpointId: id }), status.NOT_FOUND);
      const r = await c.resolveSubscribers({ workspaceId: ws, eventType: 'invoice.paid' });
      expect(r.subscribers.map((s) => s.endpointId)).not.toContain(id);
    });
  });

  describe('DeleteEndpoint is idempotent', () => {
    it('a repeated delete (a retry after a lost answer) succeeds; an id the workspace never had is NOT_FOUND', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      await c.deleteEndpoint({ workspaceId: ws, endpointId: id });
      await expect(c.deleteEndpoint({ workspaceId: ws, endpointId: id })).resolves.toEqual({});
      await expectCode(c.getEndpoint({ workspaceId: ws, endpointId: id }), status.NOT_FOUND);
      await expectCode(c.deleteEndpoint({ workspaceId: ws, endpointId: 'ep_00000000000000000000000000000000' }), status.NOT_FOUND, /ep_0{32}/);
      // Another workspace's deleted endpoint is not ours to have deleted.
      await expectCode(c.deleteEndpoint({ workspaceId: `${ws}_other`, endpointId: id }), status.NOT_FOUND);
    });

    it('libs/client retries a delete whose answer was lost, and the retry succeeds', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      // The first attempt deletes but its answer never arrives (DEADLINE_EXCEEDED at the client);
      // IDEMPOTENT lets libs/client retry, and the retry must not turn into NOT_FOUND.
      const transport = lossyFirstAnswer(h.client);
      const registry = createServiceClient(endpointsV1.EndpointRegistryServiceService, endpointsV1 as unknown as Record<string, unknown>, transport, { retry: { ...DEFAULT_RETRY_POLICY, maxAttempts: 3 } });
      await expect(registry.deleteEndpoint({ workspaceId: ws, endpointId: id })).resolves.toEqual({});
      expect(transport.attempts).toBe(2);
      await expectCode(c.getEndpoint({ workspaceId: ws, endpointId: id }), status.NOT_FOUND);
    });
  });

  describe('ResolveSubscribers', () => {
    it('returns enabled endpoints subscribed to the type or to all, with their secrets', async () => {
      const rws = `ws-${uniquePrefix('r')}`;
      const mk = async (sub: endpointsV1.Subscription) => {
        const res = await c.createEndpoint({ workspaceId: rws, url: nextUrl(), subscription: sub });
        issued.push(res.secret);
        return res;
      };
      const all = await mk(allEvents());
      const paid = await mk(types('invoice.paid'));
      const voided = await mk(types('invoice.voided'));
      const off = await mk(types('invoice.paid'));
      await c.updateEndpoint({ workspaceId: rws, endpointId: off.endpoint!.id, enabled: false, updateMask: ['enabled'] });

      const r = await c.resolveSubscribers({ workspaceId: rws, eventType: 'invoice.paid' });
      expect(r.subscribers.map((s) => s.endpointId).sort()).toEqual([all.endpoint!.id, paid.endpoint!.id].sort());
      const byId = new Map(r.subscribers.map((s) => [s.endpointId, s]));
      expect(byId.get(paid.endpoint!.id)).toEqual({ endpointId: paid.endpoint!.id, url: paid.endpoint!.url, standardWebhooks: false, version: '1', secrets: [{ secret: paid.secret, expireTime: undefined }] });

      const v = await c.resolveSubscribers({ workspaceId: rws, eventType: 'invoice.voided' });
      expect(v.subscribers.map((s) => s.endpointId).sort()).toEqual([all.endpoint!.id, voided.endpoint!.id].sort());
      // A type nobody lists reaches the all-events endpoint only.
      const n = await c.resolveSubscribers({ workspaceId: rws, eventType: 'customer.created' });
      expect(n.subscribers.map((s) => s.endpointId)).toEqual([all.endpoint!.id]);
      // endpoint_id: that endpoint whatever it subscribes to, but only while enabled.
      const one = await c.resolveSubscribers({ workspaceId: rws, eventType: 'customer.created', endpointId: voided.endpoint!.id });
      expect(one.subscribers.map((s) => s.endpointId)).toEqual([voided.endpoint!.id]);
      const none = await c.resolveSubscribers({ workspaceId: rws, eventType: 'invoice.paid', endpointId: off.endpoint!.id });
      expect(none.subscribers).toEqual([]);
      // Another workspace sees none of them.
      const elsewhere = await c.resolveSubscribers({ workspaceId: other, eventType: 'invoice.paid', endpointId: paid.endpoint!.id });
      expect(elsewhere.subscribers).toEqual([]);
    });

    it('validates workspace_id and event_type', async () => {
      await expectInvalid(c.resolveSubscribers({ workspaceId: ws, eventType: 'Bad Type' }), 'event_type');
      await expectInvalid(c.resolveSubscribers({ workspaceId: ws, eventType: '' }), 'event_type', /required/);
      await expectInvalid(c.resolveSubscribers({ workspaceId: '', eventType: 'invoice.paid' }), 'workspace_id');
    });
  });

  describe('multi-tenancy', () => {
    it("answers another workspace's endpoint exactly like a missing one, for every call", async () => {
      const { endpoint } = await create({ description: 'private' });
      const id = endpoint!.id;
      const missing = 'ep_0193c1aaaaaaaaaaaaaaaaaaaaaaaaaa';
      const attempts: [string, (endpointId: string) => Promise<unknown>][] = [
        ['get', (endpointId) => c.getEndpoint({ workspaceId: other, endpointId })],
        ['update', (endpointId) => c.updateEndpoint({ workspaceId: other, endpointId, description: 'owned', updateMask: ['description'] })],
        ['subscription', (endpointId) => c.updateEndpointSubscription({ workspaceId: other, endpointId, subscription: allEvents() })],
        ['rotate', (endpointId) => c.rotateEndpointSecret({ workspaceId: other, endpointId })],
        ['disable', (endpointId) => c.disableEndpoint({ workspaceId: other, endpointId, reason: 'gone' })],
        ['delete', (endpointId) => c.deleteEndpoint({ workspaceId: other, endpointId })],
      ];
      for (const [name, call] of attempts) {
        const theirs = await rpcError(call(id));
        const absent = await rpcError(call(missing));
        expect({ name, code: status[theirs.code] }).toEqual({ name, code: 'NOT_FOUND' });
        expect({ name, code: status[absent.code] }).toEqual({ name, code: 'NOT_FOUND' });
        expect(theirs.details.replace(id, '<id>')).toBe(absent.details.replace(missing, '<id>'));
      }
      const page = await c.listEndpoints({ workspaceId: other, pageSize: 500 });
      expect(page.endpoints.map((e) => e.id)).not.toContain(id);
      // Untouched by all of the above.
      const got = await c.getEndpoint({ workspaceId: ws, endpointId: id });
      expect(got.endpoint).toEqual(endpoint);
    });
  });

  describe('ListEndpoints', () => {
    it('pages through a workspace oldest first, with no gaps or repeats while endpoints are added', async () => {
      const lws = `ws-${uniquePrefix('l')}`;
      const mk = async (i: number) => {
        const res = await c.createEndpoint({ workspaceId: lws, url: nextUrl(), description: `n${i}` });
        issued.push(res.secret);
        return res.endpoint!.id;
      };
      const initial: string[] = [];
      for (let i = 0; i < 7; i++) initial.push(await mk(i));
      const added: string[] = [];
      const seen: string[] = [];
      let token = '';
      let pages = 0;
      do {
        const page = await c.listEndpoints({ workspaceId: lws, pageSize: 3, pageToken: token });
        expect(page.endpoints.length).toBeLessThanOrEqual(3);
        seen.push(...page.endpoints.map((e) => e.id));
        token = page.nextPageToken;
        // Insert while paging: new endpoints land after everything already listed.
        if (pages < 2) added.push(await mk(100 + pages));
        pages++;
      } while (token && pages < 20);
      expect(token).toBe('');
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual([...initial, ...added]);
      expect([...seen].sort()).toEqual(seen);

      const whole = await c.listEndpoints({ workspaceId: lws, pageSize: 0 });
      expect(whole.endpoints.map((e) => e.id)).toEqual(seen);
      expect(whole.nextPageToken).toBe('');
    });

    it('returns an empty last page and an empty list for an empty workspace', async () => {
      const res = await c.listEndpoints({ workspaceId: `ws-${uniquePrefix('e')}` });
      expect(res).toEqual({ endpoints: [], nextPageToken: '' });
    });

    it('refuses bad page sizes and tokens', async () => {
      await expectInvalid(c.listEndpoints({ workspaceId: ws, pageSize: -1 }), 'page_size', /between 0 and 500/);
      await expectInvalid(c.listEndpoints({ workspaceId: ws, pageSize: 501 }), 'page_size');
      await expectInvalid(c.listEndpoints({ workspaceId: ws, pageToken: '!!!not-a-token' }), 'page_token');
      await expectInvalid(c.listEndpoints({ workspaceId: ws, pageToken: Buffer.from('{"$gt":""}').toString('base64url') }), 'page_token');
      await expectInvalid(c.listEndpoints({ workspaceId: '' }), 'workspace_id');
    });
  });

  describe('the change topic', () => {
    it('receives an EndpointChangedEvent for create, update and delete', async () => {
      const { endpoint } = await create();
      const id = endpoint!.id;
      await c.updateEndpoint({ workspaceId: ws, endpointId: id, description: 'changed', updateMask: ['description'] });
      await c.deleteEndpoint({ workspaceId: ws, endpointId: id });
      const mine = await eventually(
        () => {
          const events = changes
            .map((m) => ({ key: m.key?.toString('utf8'), event: endpointsV1.EndpointChangedEvent.decode(m.value!) }))
            .filter((e) => e.event.endpointId === id);
          return events.length >= 3 ? events : undefined;
        },
        30_000,
        'three change events for the endpoint',
      );
      expect(mine.map((e) => [e.event.workspaceId, e.event.version, e.event.deleted])).toEqual([
        [ws, '1', false],
        [ws, '2', false],
        [ws, '3', true],
      ]);
      for (const e of mine) {
        expect(e.key).toBe(`${ws}/${id}`);
        expect(e.event.changeTime).toBeInstanceOf(Date);
      }
    });
  });

  // Last: it searches everything logged by the tests above.
  describe('logs', () => {
    it('never contain a secret the registry handed out', async () => {
      expect(issued.length).toBeGreaterThan(20);
      const logs = h.logs();
      expect(logs).toContain('endpoint-registry serving gRPC');
      expect(logs).toContain('request rejected');
      for (const secret of issued) {
        expect(logs).not.toContain(secret);
        expect(logs).not.toContain(secret.slice('whsec_'.length));
      }
    });
  });
});

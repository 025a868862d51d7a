// Server reflection as a client nobody here wrote sees it: grpcurl, with no .proto file, against
// each of the three services (all in-process on the real broker and database). Each lists only
// its own service plus health and reflection, describes messages with imported types, takes a
// JSON body, and shows INVALID_ARGUMENT with its google.rpc.BadRequest field violations decoded.
import { uniquePrefix, grpcurl, grpcurlBinary } from '@hookline/testing';
import { startPlatform, EVENT_TYPE, type Platform } from '../../dispatcher/test/harness';

const REFLECTION = ['grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];

let p: Platform;
let addresses: { registry: string; ingest: string; dispatcher: string };

beforeAll(async () => {
  grpcurlBinary(); // built once per machine, before any timed call
  p = await startPlatform(uniquePrefix('refl'), {});
  addresses = {
    registry: p.registryAddress,
    ingest: p.ingest.getChannel().getTarget().replace(/^dns:/, ''),
    dispatcher: `127.0.0.1:${p.dispatcher.port}`,
  };
}, 600_000);

afterAll(async () => {
  await p?.stop();
});

const call = (service: keyof typeof addresses, ...verb: string[]) => grpcurl(['-plaintext', addresses[service], ...verb]);
const invoke = (service: keyof typeof addresses, method: string, body: object) =>
  grpcurl(['-plaintext', '-d', '@', addresses[service], method], JSON.stringify(body));

describe.each([
  ['registry', 'webhooks.endpoints.v1.EndpointRegistryService'],
  ['ingest', 'webhooks.events.v1.EventIngestService'],
  ['dispatcher', 'webhooks.delivery.v1.DeliveryService'],
] as const)('%s', (service, name) => {
  it('lists only its own service plus health and reflection', async () => {
    const r = await call(service, 'list');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n').sort()).toEqual([name, ...REFLECTION].sort());
  });

  it('describes its service and every method', async () => {
    const r = await call(service, 'describe', name);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain(`${name} is a service:`);
  });

  it('describes health', async () => {
    const r = await call(service, 'describe', 'grpc.health.v1.Health');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain('rpc Check ( .grpc.health.v1.HealthCheckRequest ) returns ( .grpc.health.v1.HealthCheckResponse )');
  });

  it('answers a health check', async () => {
    const r = await invoke(service, 'grpc.health.v1.Health/Check', { service: name });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual({ status: 'SERVING' });
  });

  it('describes the error details it sends', async () => {
    const r = await call(service, 'describe', 'google.rpc.BadRequest');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain('repeated .google.rpc.BadRequest.FieldViolation field_violations = 1;');
  });
});

describe('messages with imported types', () => {
  it('describes Endpoint, whose create_time is a google.protobuf.Timestamp', async () => {
    const r = await call('registry', 'describe', 'webhooks.endpoints.v1.Endpoint');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain('.google.protobuf.Timestamp create_time');
  });

  it('describes UpdateEndpointRequest, whose update_mask is a google.protobuf.FieldMask', async () => {
    const r = await call('registry', 'describe', 'webhooks.endpoints.v1.UpdateEndpointRequest');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain('.google.protobuf.FieldMask update_mask');
  });
});

describe('calls with a JSON body', () => {
  it('registry: CreateEndpoint, then GetEndpoint with a Timestamp in the answer', async () => {
    const created = await invoke('registry', 'webhooks.endpoints.v1.EndpointRegistryService/CreateEndpoint', {
      workspaceId: 'ws_refl',
      url: 'https://127.0.0.1:9/hook',
      subscription: { eventTypes: { names: [EVENT_TYPE] } },
    });
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const body = JSON.parse(created.stdout) as { endpoint: { id: string; createTime: string }; secret: string };
    expect(body.secret).toMatch(/^whsec_/);
    const got = await invoke('registry', 'webhooks.endpoints.v1.EndpointRegistryService/GetEndpoint', { workspaceId: 'ws_refl', endpointId: body.endpoint.id });
    expect(got).toMatchObject({ code: 0, stderr: '' });
    const endpoint = (JSON.parse(got.stdout) as { endpoint: { id: string; createTime: string } }).endpoint;
    expect(endpoint.id).toBe(body.endpoint.id);
    expect(Number.isNaN(Date.parse(endpoint.createTime))).toBe(false);
  });

  it('ingest: ValidateEvent with a base64 payload', async () => {
    const r = await invoke('ingest', 'webhooks.events.v1.EventIngestService/ValidateEvent', {
      event: { workspaceId: 'ws_refl', eventType: EVENT_TYPE, payload: Buffer.from(JSON.stringify({ order_id: 'o1' })).toString('base64') },
    });
    expect(r).toMatchObject({ code: 0, stderr: '' });
  });

  it('dispatcher: ListAttempts of an endpoint with none', async () => {
    const r = await invoke('dispatcher', 'webhooks.delivery.v1.DeliveryService/ListAttempts', { workspaceId: 'ws_refl', endpointId: 'ep_none' });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual({});
  });
});

describe('an invalid call shows INVALID_ARGUMENT with its BadRequest field violations', () => {
  const badRequest = (stderr: string) => {
    expect(stderr).toContain('Code: InvalidArgument');
    expect(stderr).toContain('"@type": "type.googleapis.com/google.rpc.BadRequest"');
  };

  it('registry: a plain-HTTP url', async () => {
    const r = await invoke('registry', 'webhooks.endpoints.v1.EndpointRegistryService/CreateEndpoint', { workspaceId: 'ws_refl', url: 'http://example.com/hook', subscription: { allEvents: true } });
    expect(r.code).toBe(64 + 3);
    badRequest(r.stderr);
    expect(r.stderr).toContain('"field": "url"');
  });

  it('ingest: an event without a workspace', async () => {
    const r = await invoke('ingest', 'webhooks.events.v1.EventIngestService/PublishEvent', { event: { eventType: EVENT_TYPE, payload: Buffer.from('{}').toString('base64') } });
    expect(r.code).toBe(64 + 3);
    badRequest(r.stderr);
    expect(r.stderr).toContain('"field": "event.workspace_id"');
  });

  it('dispatcher: ListAttempts without an endpoint id', async () => {
    const r = await invoke('dispatcher', 'webhooks.delivery.v1.DeliveryService/ListAttempts', { workspaceId: 'ws_refl' });
    expect(r.code).toBe(64 + 3);
    badRequest(r.stderr);
    expect(r.stderr).toContain('"field": "endpoint_id"');
  });
});

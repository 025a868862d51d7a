// libs/client over a real grpc-js connection to an in-process EndpointRegistryService whose
// handlers the test scripts: TLS with a CA made at test time, field violations encoded by
// service-kit and decoded from the trailer, deadlines, and which calls are retried.
import * as grpc from '@grpc/grpc-js';
import { createRegistryClient, HooklineError, type RegistryClient } from '@hookline/client';
import { endpointsV1 } from '@hookline/proto';
import { invalidArgument, toGrpcStatus } from '@hookline/service-kit';
import { makeTestPki, type TestPki } from '@hookline/testing';

jest.setTimeout(30_000);

type Handler = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => void;

describe('libs/client over the wire', () => {
  let pki: TestPki;
  let server: grpc.Server;
  let port = 0;
  const calls: string[] = [];
  const handlers: Partial<Record<keyof typeof endpointsV1.EndpointRegistryServiceService, Handler>> = {};
  const clients: { close(): void }[] = [];

  beforeAll(async () => {
    pki = makeTestPki();
    server = new grpc.Server();
    const impl: Record<string, Handler> = {};
    for (const name of Object.keys(endpointsV1.EndpointRegistryServiceService)) {
      impl[name] = (call, cb) => {
        calls.push(name);
        const h = handlers[name as keyof typeof handlers];
        if (h) return h(call, cb);
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'not scripted' });
      };
    }
    server.addService(endpointsV1.EndpointRegistryServiceService, impl as unknown as grpc.UntypedServiceImplementation);
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(pki.ca), [{ cert_chain: Buffer.from(pki.cert), private_key: Buffer.from(pki.key) }], false);
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  beforeEach(() => {
    calls.length = 0;
    for (const k of Object.keys(handlers)) delete handlers[k as keyof typeof handlers];
  });

  function client(opts: Partial<Parameters<typeof createRegistryClient>[0]> = {}): RegistryClient {
    const c = createRegistryClient({ address: `127.0.0.1:${port}`, tls: { ca: pki.ca, serverName: 'localhost' }, ...opts });
    clients.push(c);
    return c;
  }

  it('talks TLS to a server whose certificate chains to the given CA', async () => {
    handlers.getEndpoint = (call, cb) => {
      const req = call.request as endpointsV1.GetEndpointRequest;
      cb(null, { endpoint: endpointsV1.Endpoint.fromPartial({ id: req.endpointId, workspaceId: req.workspaceId, url: 'https://example.com/h', enabled: true }) });
    };
    const res = await client().getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' });
    expect(res.endpoint).toMatchObject({ id: 'ep_1', workspaceId: 'ws_1', url: 'https://example.com/h', enabled: true });
  });

  it('refuses a server it cannot authenticate, and plaintext to a TLS server', async () => {
    handlers.getEndpoint = (_call, cb) => cb(null, { endpoint: undefined });
    // The system's trust store only. The name is given: grpc-js would send the IP as the TLS
    // server name, which Node warns about (DEP0123).
    const untrusted = await client({ tls: { serverName: 'localhost' }, timeoutMs: 3_000 }).getEndpoint({ workspaceId: 'ws', endpointId: 'ep' }).catch((e: unknown) => e);
    expect(untrusted).toBeInstanceOf(HooklineError);
    expect((untrusted as HooklineError).code).toBe(grpc.status.UNAVAILABLE);
    const plain = await client({ tls: false, timeoutMs: 3_000 }).getEndpoint({ workspaceId: 'ws', endpointId: 'ep' }).catch((e: unknown) => e);
    expect((plain as HooklineError).unreachable).toBe(true);
    expect(calls).toEqual([]);
  });

  it('surfaces INVALID_ARGUMENT with the field violations service-kit encoded, without retrying', async () => {
    handlers.createEndpoint = (_call, cb) => {
      const st = toGrpcStatus(invalidArgument([{ field: 'url', description: 'must use https' }, { field: 'workspace_id', description: 'is required' }]), () => undefined);
      cb({ code: st.code, details: st.details, metadata: st.metadata });
    };
    const err = (await client().createEndpoint({ url: 'http://x', requestId: 'r1' }).catch((e: unknown) => e)) as HooklineError;
    expect(err).toBeInstanceOf(HooklineError);
    expect(err.codeName).toBe('INVALID_ARGUMENT');
    expect(err.violations).toEqual([{ field: 'url', description: 'must use https' }, { field: 'workspace_id', description: 'is required' }]);
    expect(err.attempts).toBe(1);
    expect(calls).toEqual(['createEndpoint']);
  });

  it('retries a read that answered UNAVAILABLE, and gives a non-idempotent call only UNAVAILABLE retries', async () => {
    let n = 0;
    handlers.listEndpoints = (_call, cb) => (++n < 3 ? cb({ code: grpc.status.UNAVAILABLE, details: 'database down' }) : cb(null, { endpoints: [], nextPageToken: '' }));
    await expect(client().listEndpoints({ workspaceId: 'ws' })).resolves.toEqual({ endpoints: [], nextPageToken: '' });
    expect(calls).toEqual(['listEndpoints', 'listEndpoints', 'listEndpoints']);

    calls.length = 0;
    handlers.createEndpoint = (_call, cb) => cb({ code: grpc.status.UNAVAILABLE, details: 'database down' });
    await expect(client().createEndpoint({ workspaceId: 'ws', url: 'https://x' })).rejects.toMatchObject({ codeName: 'UNAVAILABLE', attempts: 1 });
    await expect(client().createEndpoint({ workspaceId: 'ws', url: 'https://x', requestId: 'r-1' })).rejects.toMatchObject({ codeName: 'UNAVAILABLE', attempts: 3 });
    expect(calls).toHaveLength(4);
  });

  it('puts a deadline on every call, shared by its retries', async () => {
    handlers.getEndpoint = () => undefined; // never answers
    const err = (await client().getEndpoint({ workspaceId: 'ws', endpointId: 'ep' }, { timeoutMs: 500 }).catch((e: unknown) => e)) as HooklineError;
    expect(err.codeName).toBe('DEADLINE_EXCEEDED');
    // The first attempt used the whole budget: nothing is left for another.
    expect(err.attempts).toBe(1);
    expect(calls).toEqual(['getEndpoint']);
  });

  it('retries DEADLINE_EXCEEDED answered by the server only for NO_SIDE_EFFECTS / IDEMPOTENT methods', async () => {
    const late = (name: 'getEndpoint' | 'deleteEndpoint' | 'updateEndpoint', reply: unknown) => {
      let n = 0;
      handlers[name] = (_call, cb) => (++n < 3 ? cb({ code: grpc.status.DEADLINE_EXCEEDED, details: 'a dependency timed out' }) : cb(null, reply));
    };
    late('getEndpoint', { endpoint: undefined });
    late('deleteEndpoint', {});
    late('updateEndpoint', { endpoint: undefined });
    const c = client();
    await expect(c.getEndpoint({ workspaceId: 'ws', endpointId: 'ep' })).resolves.toEqual({ endpoint: undefined });
    await expect(c.deleteEndpoint({ workspaceId: 'ws', endpointId: 'ep' })).resolves.toEqual({});
    await expect(c.updateEndpoint({ workspaceId: 'ws', endpointId: 'ep', updateMask: ['description'] })).rejects.toMatchObject({ codeName: 'DEADLINE_EXCEEDED', attempts: 1 });
    expect(calls).toEqual(['getEndpoint', 'getEndpoint', 'getEndpoint', 'deleteEndpoint', 'deleteEndpoint', 'deleteEndpoint', 'updateEndpoint']);
  });
});

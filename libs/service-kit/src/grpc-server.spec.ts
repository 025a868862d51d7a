import * as grpc from '@grpc/grpc-js';
import { endpointsV1 } from '@hookline/proto';
import { GrpcServer } from './grpc-server';
import { createLogger } from './logger';

describe('GrpcServer', () => {
  const server = new GrpcServer(createLogger('test', 'silent'));
  let port = 0;
  let seen: endpointsV1.GetEventTypeRequest[] = [];
  // Only GetEventType is exercised; every other handler must exist but is never called.
  const unused = () => Promise.reject(new Error('not used'));
  const handlers = Object.fromEntries(Object.keys(endpointsV1.EndpointRegistryServiceService).map((m) => [m, unused]));

  beforeAll(async () => {
    server.add(endpointsV1.EndpointRegistryServiceService, 'webhooks.endpoints.v1.EndpointRegistryService', {
      ...(handlers as Record<string, never>),
      async getEventType(req: endpointsV1.GetEventTypeRequest) {
        seen.push(req);
        return { eventType: undefined };
      },
    });
    port = await server.listen('127.0.0.1', 0);
  });
  afterAll(() => server.shutdown(1_000));
  beforeEach(() => {
    seen = [];
  });

  /** Sends raw bytes as a GetEventType request. */
  function sendRaw(bytes: Buffer): Promise<{ code: grpc.status; details: string }> {
    const Raw = grpc.makeGenericClientConstructor(
      { getEventType: { ...endpointsV1.EndpointRegistryServiceService.getEventType, requestSerialize: (b: Buffer) => b } },
      'Raw',
    );
    const client = new Raw(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    return new Promise((resolve) => {
      (client as unknown as { getEventType: (b: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void }).getEventType(
        bytes,
        new grpc.Metadata(),
        { deadline: new Date(Date.now() + 5_000) },
        (err) => {
          client.close();
          resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' });
        },
      );
    });
  }

  it('answers INVALID_ARGUMENT, not INTERNAL, for bytes that are not the request message', async () => {
    const truncated = Buffer.from(endpointsV1.GetEventTypeRequest.encode({ name: 'invoice.paid' }).finish()).subarray(0, 5);
    const res = await sendRaw(truncated);
    expect(res.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(res.details).toMatch(/request: is not a valid GetEventType request/);
    expect(seen).toHaveLength(0);
  });

  it('passes well-formed requests to the handler', async () => {
    const res = await sendRaw(Buffer.from(endpointsV1.GetEventTypeRequest.encode({ name: 'invoice.paid' }).finish()));
    expect(res.code).toBe(grpc.status.OK);
    expect(seen).toEqual([{ name: 'invoice.paid' }]);
  });
});

import { Metadata, status } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { invalidArgument, notFound, toGrpcStatus } from '@hookline/service-kit';
import { decodeStatusDetails, HooklineError, STATUS_DETAILS_KEY, toHooklineError } from './errors';

const METHOD = '/webhooks.endpoints.v1.EndpointRegistryService/CreateEndpoint';

/** What grpc-js hands a client callback for a status the server sent. */
function grpcError(code: status, details: string, metadata = new Metadata()) {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

describe('error decoding', () => {
  it('round-trips field violations written by service-kit (the services’ own encoder)', () => {
    const violations = [
      { field: 'url', description: 'must use https' },
      { field: 'subscription.event_types.names[2]', description: 'is not in the catalog — “unicode” ✓' },
    ];
    const st = toGrpcStatus(invalidArgument(violations), () => undefined);
    const err = toHooklineError(grpcError(st.code, st.details, st.metadata), METHOD);
    expect(err).toBeInstanceOf(HooklineError);
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.codeName).toBe('INVALID_ARGUMENT');
    expect(err.violations).toEqual(violations);
    expect(err.details).toBe(st.details);
    expect(err.method).toBe(METHOD);
    expect(err.message).toBe(`CreateEndpoint: INVALID_ARGUMENT: ${st.details}`);
    expect(err.unreachable).toBe(false);
  });

  it('keeps code and message when there are no details', () => {
    const st = toGrpcStatus(notFound('endpoint ep_1 not found'), () => undefined);
    const err = toHooklineError(grpcError(st.code, st.details, st.metadata), METHOD, 2);
    expect(err).toMatchObject({ code: status.NOT_FOUND, codeName: 'NOT_FOUND', details: 'endpoint ep_1 not found', violations: [], attempts: 2 });
  });

  it('marks UNAVAILABLE and DEADLINE_EXCEEDED as unreachable', () => {
    expect(toHooklineError(grpcError(status.UNAVAILABLE, 'No connection established'), METHOD).unreachable).toBe(true);
    expect(toHooklineError(grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), METHOD).unreachable).toBe(true);
  });

  it('skips unknown fields and detail types, and survives garbage', () => {
    const fv = new BinaryWriter().uint32(10).string('a').uint32(18).string('b').uint32(7 << 3).int32(9).finish();
    const badRequest = new BinaryWriter().uint32(10).bytes(fv).uint32(2 << 3 | 2).string('ignored').finish();
    const anyOther = new BinaryWriter().uint32(10).string('type.googleapis.com/google.rpc.RetryInfo').uint32(18).bytes(new Uint8Array([8, 1])).finish();
    const anyBad = new BinaryWriter().uint32(10).string('type.googleapis.com/google.rpc.BadRequest').uint32(18).bytes(badRequest).finish();
    const bytes = new BinaryWriter().uint32(8).int32(3).uint32(18).string('bad').uint32(26).bytes(anyOther).uint32(26).bytes(anyBad).uint32(9 << 3).int32(1).finish();
    expect(decodeStatusDetails(bytes)).toEqual({
      code: 3,
      message: 'bad',
      detailTypes: ['type.googleapis.com/google.rpc.RetryInfo', 'type.googleapis.com/google.rpc.BadRequest'],
      violations: [{ field: 'a', description: 'b' }],
    });
    expect(decodeStatusDetails(new Uint8Array([0x1a, 0xff]))).toBeUndefined();
    const md = new Metadata();
    md.set(STATUS_DETAILS_KEY, Buffer.from([0x1a, 0xff]));
    expect(toHooklineError(grpcError(status.INVALID_ARGUMENT, 'x', md), METHOD)).toMatchObject({ code: status.INVALID_ARGUMENT, violations: [] });
  });

  it('turns a non-gRPC throw into UNKNOWN with the cause kept', () => {
    const cause = new TypeError('boom');
    const err = toHooklineError(cause, METHOD);
    expect(err).toMatchObject({ code: status.UNKNOWN, details: 'boom' });
    expect(err.cause).toBe(cause);
  });
});

import { status, type Metadata, type CallOptions as GrpcCallOptions, type ServiceError } from '@grpc/grpc-js';
import { endpointsV1, eventsV1 } from '@hookline/proto';
import { callUnary, createServiceClient, type UnaryTransport } from './client';
import { HooklineError } from './errors';
import { backoffDelay, DEFAULT_RETRY_POLICY, isRetryableCode, NO_RETRY, retryDelay } from './retry';
import { methodSafety } from './safety';

const REG = '/webhooks.endpoints.v1.EndpointRegistryService';
const ING = '/webhooks.events.v1.EventIngestService';

/** Answers each call with the next scripted outcome and records what it was asked. */
class ScriptedTransport implements UnaryTransport {
  readonly calls: { method: string; deadline: number; request: unknown }[] = [];
  constructor(private readonly script: (number | 'ok')[]) {}
  makeUnaryRequest<Req, Res>(
    method: string,
    serialize: (value: Req) => Buffer,
    deserialize: (value: Buffer) => Res,
    argument: Req,
    _metadata: Metadata,
    options: GrpcCallOptions,
    callback: (err: ServiceError | null, value?: Res) => void,
  ) {
    serialize(argument); // as grpc-js would: a request that cannot be encoded fails here
    this.calls.push({ method, deadline: (options.deadline as Date).getTime(), request: argument });
    const next = this.script.shift() ?? status.INTERNAL;
    queueMicrotask(() => {
      if (next === 'ok') callback(null, deserialize(Buffer.alloc(0))); // the response message with all defaults
      else callback(Object.assign(new Error(status[next]), { code: next, details: `scripted ${status[next]}`, metadata: undefined as unknown as Metadata }));
    });
    return { cancel() {} };
  }
}

const noSleep = { sleep: async () => undefined };
const settings = { timeoutMs: 10_000, retry: DEFAULT_RETRY_POLICY, safety: methodSafety, ...noSleep };

describe('which methods are safe to repeat (read from the contracts)', () => {
  it('matches the idempotency_level options in the .proto files', () => {
    expect(methodSafety(`${REG}/GetEndpoint`)).toBe('NO_SIDE_EFFECTS');
    expect(methodSafety(`${REG}/ListEventTypes`)).toBe('NO_SIDE_EFFECTS');
    expect(methodSafety(`${REG}/DeleteEndpoint`)).toBe('IDEMPOTENT');
    expect(methodSafety(`${REG}/CreateEndpoint`)).toBe('UNKNOWN');
    expect(methodSafety(`${ING}/PublishEvent`)).toBe('UNKNOWN');
    expect(methodSafety(`${ING}/ValidateEvent`)).toBe('NO_SIDE_EFFECTS');
    expect(methodSafety('/webhooks.delivery.v1.DeliveryService/ListAttempts')).toBe('NO_SIDE_EFFECTS');
    expect(methodSafety('/webhooks.delivery.v1.DeliveryService/SendTestEvent')).toBe('UNKNOWN');
    expect(methodSafety('/nope.Service/Method')).toBe('UNKNOWN');
  });
});

describe('retry policy', () => {
  it('retries UNAVAILABLE always, DEADLINE_EXCEEDED only when safe, nothing else', () => {
    expect(isRetryableCode(status.UNAVAILABLE, 'UNKNOWN')).toBe(true);
    expect(isRetryableCode(status.DEADLINE_EXCEEDED, 'UNKNOWN')).toBe(false);
    expect(isRetryableCode(status.DEADLINE_EXCEEDED, 'NO_SIDE_EFFECTS')).toBe(true);
    expect(isRetryableCode(status.DEADLINE_EXCEEDED, 'IDEMPOTENT')).toBe(true);
    for (const code of [status.INVALID_ARGUMENT, status.NOT_FOUND, status.ALREADY_EXISTS, status.FAILED_PRECONDITION, status.INTERNAL, status.UNKNOWN, status.RESOURCE_EXHAUSTED]) {
      expect(isRetryableCode(code, 'NO_SIDE_EFFECTS')).toBe(false);
    }
  });

  it('backs off exponentially with bounded jitter and a cap', () => {
    const p = { ...DEFAULT_RETRY_POLICY, maxAttempts: 10 };
    expect(backoffDelay(p, 1, () => 0.5)).toBe(100);
    expect(backoffDelay(p, 2, () => 0.5)).toBe(200);
    expect(backoffDelay(p, 3, () => 0)).toBe(320);
    expect(backoffDelay(p, 3, () => 1)).toBe(480);
    expect(backoffDelay(p, 20, () => 0.5)).toBe(2_000);
  });

  it('never retries PublishEvent without an idempotency key, nor CreateEndpoint without a request_id', () => {
    const q = { safety: 'UNKNOWN' as const, code: status.UNAVAILABLE, attempt: 1, remainingMs: 10_000 };
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, method: `${ING}/PublishEvent`, request: { event: { idempotencyKey: '' } } })).toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, method: `${ING}/PublishEvent`, request: { event: { idempotencyKey: 'k1' } } })).not.toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, method: `${ING}/PublishEvents`, request: { events: [{ idempotencyKey: 'a' }, { idempotencyKey: '' }] } })).toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, method: `${ING}/PublishEvents`, request: { events: [{ idempotencyKey: 'a' }] } })).not.toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, method: `${REG}/CreateEndpoint`, request: { requestId: '' } })).toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, method: `${REG}/CreateEndpoint`, request: { requestId: 'r1' } })).not.toBeNull();
  });

  it('gives up when attempts are used up or the wait would pass the deadline', () => {
    const q = { method: `${REG}/GetEndpoint`, safety: 'NO_SIDE_EFFECTS' as const, request: {}, code: status.UNAVAILABLE, remainingMs: 10_000 };
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, attempt: 2 })).not.toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, attempt: 3 })).toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...q, attempt: 1, remainingMs: 50 })).toBeNull();
    expect(retryDelay(NO_RETRY, { ...q, attempt: 1 })).toBeNull();
  });
});

describe('call loop', () => {
  const getDef = endpointsV1.EndpointRegistryServiceService.getEndpoint;
  const publishDef = eventsV1.EventIngestServiceService.publishEvent;
  const getReq = endpointsV1.GetEndpointRequest.fromPartial({ workspaceId: 'ws', endpointId: 'ep' });

  it('retries UNAVAILABLE up to maxAttempts, then throws a HooklineError counting the attempts', async () => {
    const t = new ScriptedTransport([status.UNAVAILABLE, status.UNAVAILABLE, status.UNAVAILABLE, 'ok']);
    const err = await callUnary(t, getDef, getReq, settings).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HooklineError);
    expect(err).toMatchObject({ code: status.UNAVAILABLE, attempts: 3, method: `${REG}/GetEndpoint` });
    expect(t.calls).toHaveLength(3);
  });

  it('succeeds on a later attempt, and every attempt shares the one overall deadline', async () => {
    let clock = 1_000_000;
    const t = new ScriptedTransport([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, 'ok']);
    const res = await callUnary(t, getDef, getReq, { ...settings, now: () => clock, sleep: async (ms) => void (clock += ms) });
    expect(res).toEqual({ endpoint: undefined });
    expect(t.calls).toHaveLength(3);
    expect(new Set(t.calls.map((c) => c.deadline))).toEqual(new Set([1_000_000 + 10_000]));
  });

  it('does not retry INVALID_ARGUMENT, or DEADLINE_EXCEEDED on a method with side effects', async () => {
    const bad = new ScriptedTransport([status.INVALID_ARGUMENT, 'ok']);
    await expect(callUnary(bad, getDef, getReq, settings)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, attempts: 1 });
    const req = eventsV1.PublishEventRequest.fromPartial({ event: { workspaceId: 'ws', eventType: 't', payload: Buffer.from('{}'), idempotencyKey: 'k' } });
    const slow = new ScriptedTransport([status.DEADLINE_EXCEEDED, 'ok']);
    await expect(callUnary(slow, publishDef, req, settings)).rejects.toMatchObject({ code: status.DEADLINE_EXCEEDED, attempts: 1 });
  });

  it('does not retry a PublishEvent without idempotency key even on UNAVAILABLE', async () => {
    const req = eventsV1.PublishEventRequest.fromPartial({ event: { workspaceId: 'ws', eventType: 't', payload: Buffer.from('{}') } });
    const t = new ScriptedTransport([status.UNAVAILABLE, 'ok']);
    await expect(callUnary(t, publishDef, req, settings)).rejects.toMatchObject({ code: status.UNAVAILABLE, attempts: 1 });
    const keyed = new ScriptedTransport([status.UNAVAILABLE, 'ok']);
    await expect(callUnary(keyed, publishDef, { ...req, event: { ...req.event!, idempotencyKey: 'k' } }, settings)).resolves.toBeDefined();
    expect(keyed.calls).toHaveLength(2);
  });

  it('typed service clients fill proto3 defaults from partial requests', async () => {
    const t = new ScriptedTransport(['ok']);
    const client = createServiceClient(endpointsV1.EndpointRegistryServiceService, endpointsV1 as unknown as Record<string, unknown>, t);
    const res = await client.listEndpoints({ workspaceId: 'ws' });
    expect(res).toEqual({ endpoints: [], nextPageToken: '' });
    expect(t.calls[0]).toMatchObject({ method: `${REG}/ListEndpoints`, request: { workspaceId: 'ws', pageSize: 0, pageToken: '' } });
  });
});

// Promise clients for the three services, derived from the generated grpc-js service definitions
// (libs/proto), so every RPC in a contract is a typed method here with no list to keep in step.
// Every call has a deadline; failures are retried only as retry.ts allows; errors are HooklineErrors.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { deliveryV1, endpointsV1, eventsV1, portalV1 } from '@hookline/proto';
import { toHooklineError } from './errors';
import { DEFAULT_RETRY_POLICY, retryDelay, type RetryPolicy } from './retry';
import { methodSafety, type Safety } from './safety';

/** Per-call settings; every field falls back to the client's. */
export interface CallOptions {
  /** Overall budget for the call, retries included. */
  timeoutMs?: number;
  /** Replaces the client's retry policy for this call (`NO_RETRY` turns retries off). */
  retry?: RetryPolicy;
  /** Extra request metadata (headers). */
  metadata?: Record<string, string>;
  /** Cancels the call (and any pending retry). */
  signal?: AbortSignal;
}

/** TLS for the connection. `true` means TLS with the system's trust store. */
export interface TlsOptions {
  /** PEM CA bundle (contents, not a path) to trust instead of the system store. */
  ca?: string | Buffer;
  /** PEM client certificate and key, for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Check the server certificate against this name instead of the address's host. */
  serverName?: string;
}

export interface ClientOptions {
  /** `host:port`. */
  address: string;
  /** Plaintext when unset or false (loopback, a service mesh that terminates TLS). */
  tls?: TlsOptions | boolean;
  /**
   * Sent as `authorization: Bearer <token>` on every call: this caller's identity where the
   * services' permissions policy lists it by token (TLS ending before the service). Use it over
   * TLS (or a mesh that encrypts): on a plaintext network the token is readable.
   */
  bearerToken?: string;
  /** Default overall budget per call, retries included. @default 10000 ms */
  timeoutMs?: number;
  /** Per-method budgets (method name as in the contract, e.g. `SendTestEvent`), overriding timeoutMs. */
  methodTimeoutsMs?: Record<string, number>;
  /** @default DEFAULT_RETRY_POLICY (3 attempts, 100 ms doubling, ±20 % jitter) */
  retry?: RetryPolicy;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

// A SendTestEvent waits for the endpoint (the dispatcher's own budget is 10 s per attempt), and a
// RecoverEndpoint may requeue thousands of deliveries: both get more than the default 10 s.
const DEFAULT_METHOD_TIMEOUTS_MS: Record<string, number> = { SendTestEvent: 20_000, RecoverEndpoint: 60_000 };

type UnaryDefinition = {
  path: string;
  requestStream: false;
  responseStream: false;
  requestSerialize: (value: never) => Buffer;
  responseDeserialize: (value: Buffer) => unknown;
};
type RequestOf<D> = D extends { requestSerialize: (value: infer R) => Buffer } ? R : never;
type ResponseOf<D> = D extends { responseDeserialize: (value: Buffer) => infer R } ? R : never;

/** Request fields may be left out: each message's `fromPartial` fills proto3 defaults. */
export type PartialMessage<T> = T extends Date | Buffer | Uint8Array | string | number | boolean | undefined
  ? T
  : T extends Array<infer U>
    ? Array<PartialMessage<U>>
    : T extends { $case: string }
      ? { [K in keyof T]: K extends '$case' ? T[K] : PartialMessage<T[K]> }
      : T extends object
        ? { [K in keyof T]?: PartialMessage<T[K]> }
        : T;

/** One promise method per RPC of a generated service definition. */
export type PromiseClient<S> = {
  [K in keyof S]: (request: PartialMessage<RequestOf<S[K]>>, options?: CallOptions) => Promise<ResponseOf<S[K]>>;
};

export type RegistryClient = PromiseClient<typeof endpointsV1.EndpointRegistryServiceService>;
export type IngestClient = PromiseClient<typeof eventsV1.EventIngestServiceService>;
export type DeliveryClient = PromiseClient<typeof deliveryV1.DeliveryServiceService>;
export type PortalClient = PromiseClient<typeof portalV1.PortalServiceService>;

/** The part of grpc.Client the call loop uses: small enough for a unit test to fake. */
export interface UnaryTransport {
  makeUnaryRequest<Req, Res>(
    method: string,
    serialize: (value: Req) => Buffer,
    deserialize: (value: Buffer) => Res,
    argument: Req,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, value?: Res) => void,
  ): { cancel(): void };
}

export interface CallLoopSettings {
  timeoutMs: number;
  retry: RetryPolicy;
  safety: (method: string) => Safety;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

const abortError = (signal: AbortSignal): unknown => signal.reason ?? new Error('aborted');

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One unary call with an overall deadline and retries. Each attempt's gRPC deadline is what is
 * left of the overall budget, so retries never stretch a call past its deadline.
 */
export async function callUnary<Req, Res>(
  transport: UnaryTransport,
  def: { path: string; requestSerialize: (value: Req) => Buffer; responseDeserialize: (value: Buffer) => Res },
  request: Req,
  settings: CallLoopSettings,
  options: CallOptions = {},
): Promise<Res> {
  const now = settings.now ?? Date.now;
  const sleep = settings.sleep ?? defaultSleep;
  const policy = options.retry ?? settings.retry;
  const deadline = now() + (options.timeoutMs ?? settings.timeoutMs);
  const safety = settings.safety(def.path);
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptOnce(transport, def, request, new Date(deadline), options);
    } catch (err) {
      const code = (err as grpc.ServiceError).code;
      const delay = typeof code === 'number' && !options.signal?.aborted ? retryDelay(policy, { method: def.path, safety, request, code, attempt, remainingMs: deadline - now() }) : null;
      if (delay === null) throw toHooklineError(err, def.path, attempt);
      try {
        await sleep(delay, options.signal);
      } catch {
        throw toHooklineError(err, def.path, attempt);
      }
    }
  }
}

function attemptOnce<Req, Res>(
  transport: UnaryTransport,
  def: { path: string; requestSerialize: (value: Req) => Buffer; responseDeserialize: (value: Buffer) => Res },
  request: Req,
  deadline: Date,
  options: CallOptions,
): Promise<Res> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
  return new Promise<Res>((resolve, reject) => {
    if (options.signal?.aborted) return reject(Object.assign(new Error('cancelled by the caller'), { code: grpc.status.CANCELLED, details: 'cancelled by the caller' }));
    const call = transport.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, request, metadata, { deadline }, (err, value) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (err) return reject(err);
      resolve(value as Res);
    });
    const onAbort = () => call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** grpc-js credentials and channel options for ClientOptions.tls. */
export function channelCredentials(tls: TlsOptions | boolean | undefined): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (!tls) return { credentials: grpc.credentials.createInsecure(), options: {} };
  const t: TlsOptions = tls === true ? {} : tls;
  if ((t.cert === undefined) !== (t.key === undefined)) throw new Error('TLS client certificate and key must be given together');
  const buf = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));
  const credentials = grpc.credentials.createSsl(buf(t.ca), buf(t.key), buf(t.cert));
  return { credentials, options: t.serverName ? { 'grpc.ssl_target_name_override': t.serverName, 'grpc.default_authority': t.serverName } : {} };
}

/** Reads PEM files for TlsOptions (a convenience for CLIs and config files). */
export function tlsFromFiles(files: { ca?: string; cert?: string; key?: string; serverName?: string }): TlsOptions {
  const read = (p: string | undefined) => (p ? readFileSync(p) : undefined);
  const out: TlsOptions = {};
  const ca = read(files.ca);
  const cert = read(files.cert);
  const key = read(files.key);
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  if (files.serverName) out.serverName = files.serverName;
  return out;
}

type MessageModule = Record<string, unknown>;

/**
 * Builds a PromiseClient for one service definition over one channel. `messages` is the generated
 * module, where each RPC's `<Method>Request` (buf STANDARD lint guarantees the name) provides
 * `fromPartial`.
 */
export function createServiceClient<S extends Record<string, UnaryDefinition>>(
  definition: S,
  messages: MessageModule,
  transport: UnaryTransport,
  opts: Pick<ClientOptions, 'timeoutMs' | 'methodTimeoutsMs' | 'retry'> = {},
): PromiseClient<S> {
  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(definition)) {
    const rpcName = def.path.split('/').pop()!;
    const fns = messages[`${rpcName}Request`] as { fromPartial?: (p: unknown) => unknown } | undefined;
    if (typeof fns?.fromPartial !== 'function') throw new Error(`no generated ${rpcName}Request message for ${def.path}`);
    const timeoutMs = opts.methodTimeoutsMs?.[rpcName] ?? DEFAULT_METHOD_TIMEOUTS_MS[rpcName] ?? opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const settings: CallLoopSettings = { timeoutMs, retry: opts.retry ?? DEFAULT_RETRY_POLICY, safety: methodSafety };
    out[key] = (request: unknown, options?: CallOptions) =>
      callUnary(transport, def as unknown as Parameters<typeof callUnary>[1], fns.fromPartial!(request ?? {}), settings, options);
  }
  return out as PromiseClient<S>;
}

function channel(opts: ClientOptions): grpc.Client {
  const { credentials, options } = channelCredentials(opts.tls);
  const token = opts.bearerToken;
  // An interceptor rather than call credentials: grpc-js refuses those on plaintext channels,
  // and a mesh that terminates TLS in front of the service is plaintext to us.
  const interceptors: grpc.Interceptor[] = token
    ? [
        (o, next) =>
          new grpc.InterceptingCall(next(o), {
            start(metadata, listener, go) {
              metadata.set('authorization', `Bearer ${token}`);
              go(metadata, listener);
            },
          }),
      ]
    : [];
  return new grpc.Client(opts.address, credentials, { ...options, ...(opts.channelOptions ?? {}), ...(interceptors.length ? { interceptors } : {}) });
}

/** A client for endpoint-registry (endpoints, subscriptions, secrets, event-type catalog). */
export function createRegistryClient(opts: ClientOptions): RegistryClient & { close(): void } {
  const ch = channel(opts);
  return Object.assign(createServiceClient(endpointsV1.EndpointRegistryServiceService, endpointsV1 as unknown as MessageModule, ch, opts), { close: () => ch.close() });
}

/** A client for event-ingest (publish and validate events). */
export function createIngestClient(opts: ClientOptions): IngestClient & { close(): void } {
  const ch = channel(opts);
  return Object.assign(createServiceClient(eventsV1.EventIngestServiceService, eventsV1 as unknown as MessageModule, ch, opts), { close: () => ch.close() });
}

/** A client for the dispatchers' DeliveryService (test sends, attempt log, retry, recover). */
export function createDeliveryClient(opts: ClientOptions): DeliveryClient & { close(): void } {
  const ch = channel(opts);
  return Object.assign(createServiceClient(deliveryV1.DeliveryServiceService, deliveryV1 as unknown as MessageModule, ch, opts), { close: () => ch.close() });
}

/** A client for the portal's PortalService (one-time portal links, for the product's backend). */
export function createPortalClient(opts: ClientOptions): PortalClient & { close(): void } {
  const ch = channel(opts);
  return Object.assign(createServiceClient(portalV1.PortalServiceService, portalV1 as unknown as MessageModule, ch, opts), { close: () => ch.close() });
}

export interface HooklineClientOptions extends Omit<ClientOptions, 'address'> {
  /** endpoint-registry `host:port`. @default 127.0.0.1:50051 */
  registry?: string;
  /** event-ingest `host:port`. @default 127.0.0.1:50052 */
  ingest?: string;
  /** a dispatcher's `host:port`. @default 127.0.0.1:50053 */
  dispatcher?: string;
}

export interface HooklineClient {
  registry: RegistryClient;
  ingest: IngestClient;
  delivery: DeliveryClient;
  close(): void;
}

/**
 * All three clients with shared settings. Channels connect lazily, on the first call, so a
 * client for a service that is never called never dials it.
 */
export function createHooklineClient(opts: HooklineClientOptions = {}): HooklineClient {
  const { registry = '127.0.0.1:50051', ingest = '127.0.0.1:50052', dispatcher = '127.0.0.1:50053', ...shared } = opts;
  const r = createRegistryClient({ ...shared, address: registry });
  const i = createIngestClient({ ...shared, address: ingest });
  const d = createDeliveryClient({ ...shared, address: dispatcher });
  return {
    registry: r,
    ingest: i,
    delivery: d,
    close() {
      r.close();
      i.close();
      d.close();
    },
  };
}

// A grpc-js server with grpc.health.v1 and server reflection, and handlers written as async
// functions: the adapter answers exactly once, and every error goes through toGrpcStatus.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { context, metrics, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Counter, type Histogram, type TextMapGetter } from '@opentelemetry/api';
import { tracer } from '@hookline/telemetry';
import type { GrpcServerSecurity } from './config';
import { invalidField, toGrpcStatus } from './errors';
import { ReloadingServerCredentials } from './grpc-tls';
import type { Logger } from './logger';
import { Authorizer } from './permissions';
import { contractDescriptors, ReflectionServer } from './reflection';

type UnaryDefinition = grpc.MethodDefinition<unknown, unknown>;

/** What requestDeserialize returns for bytes that are not the request message. */
const UNDECODABLE = Symbol('undecodable request');
export type AsyncUnary<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;

/** Async handlers keyed by the method names of a ts-proto generated service definition. */
export type AsyncService<S extends grpc.UntypedServiceImplementation> = {
  [K in keyof S as string extends K ? never : K]: S[K] extends grpc.handleUnaryCall<infer Req, infer Res> ? AsyncUnary<Req, Res> : never;
};

export type HealthStatus = 'SERVING' | 'NOT_SERVING';

/** Seconds; from a cache hit (~1 ms) to a SendTestEvent that waits out its 10 s attempt. */
const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Calls by service, method and status code, and their latency: the same for every service. */
interface RpcMetrics {
  calls: Counter;
  seconds: Histogram;
}
const rpcMetrics = (): RpcMetrics => {
  const meter = metrics.getMeter('hookline');
  return {
    calls: meter.createCounter('hookline.rpc.server.calls', { description: 'gRPC calls answered, by service, method and status code (OK, INVALID_ARGUMENT, UNAVAILABLE, ...)' }),
    seconds: meter.createHistogram('hookline.rpc.server.seconds', { unit: 's', description: 'gRPC call latency, receipt to answer, by service, method and status code', advice: { explicitBucketBoundaries: RPC_BUCKETS } }),
  };
};

export class GrpcServer {
  readonly server = new grpc.Server({
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly serviceNames: string[] = [];
  private readonly metrics = rpcMetrics();
  private security: GrpcServerSecurity = { tls: undefined, permissions: undefined, healthPort: undefined };
  private authorizer: Authorizer | undefined;
  private tls: ReloadingServerCredentials | undefined;
  private healthServer: grpc.Server | undefined;
  /** Told about calls that failed because a dependency did not answer (readiness listens). */
  onDependencyError: ((err: unknown) => void) | undefined;

  constructor(private readonly log: Logger) {
    this.health.addToServer(this.server);
    // Reflects exactly the services added to this server (plus health and reflection).
    new ReflectionServer(contractDescriptors(), () => [...this.serviceNames]).addToServer(this.server);
  }

  /**
   * TLS (mutual when a client CA is set) and caller permissions for the calls to come, and the
   * plaintext health-only port. Before listen(). Throws when the certificate files are unusable.
   */
  secure(security: GrpcServerSecurity): void {
    this.security = security;
    this.authorizer = security.permissions ? new Authorizer(security.permissions) : undefined;
    this.tls = security.tls ? new ReloadingServerCredentials(security.tls, this.log) : undefined;
  }

  /** Adds a service whose handlers are async functions. */
  add<S extends grpc.UntypedServiceImplementation>(
    definition: grpc.ServiceDefinition<S>,
    name: string,
    handlers: AsyncService<S>,
  ): void {
    const impl: grpc.UntypedServiceImplementation = {};
    const guarded: Record<string, UnaryDefinition> = {};
    for (const [method, def] of Object.entries(definition) as [string, UnaryDefinition][]) {
      const handler = (handlers as Record<string, AsyncUnary<unknown, unknown>>)[method];
      if (!handler) throw new Error(`no handler for ${name}.${method}`);
      const rpcName = def.path.split('/').pop() ?? method;
      // grpc-js answers INTERNAL when a request does not decode; a malformed request is the
      // caller's mistake, so decode failures reach the handler as a marker and become INVALID_ARGUMENT.
      guarded[method] = {
        ...def,
        requestDeserialize: (bytes: Buffer) => {
          try {
            return def.requestDeserialize(bytes);
          } catch {
            return UNDECODABLE;
          }
        },
      };
      impl[method] = this.adapt(`${name}/${rpcName}`, (req, call) =>
        req === UNDECODABLE ? Promise.reject(invalidField('request', `is not a valid ${rpcName} request (protobuf decoding failed); send the message ${rpcName}Request`)) : handler(req, call),
      );
    }
    this.server.addService(guarded as grpc.ServiceDefinition, impl);
    this.serviceNames.push(name);
  }

  private adapt(rpc: string, handler: AsyncUnary<unknown, unknown>): grpc.handleUnaryCall<unknown, unknown> {
    const [service = '', method = ''] = rpc.split('/');
    return (call, callback) => {
      // The grpc-js library instrumentation (processes with tracing on) already made the server
      // span; elsewhere (tests in one process, or tracing off: a no-op span) we make it here,
      // continuing the caller's trace from the request metadata.
      const own = trace.getActiveSpan() === undefined;
      const parent = own ? propagation.extract(ROOT_CONTEXT, call.metadata, metadataGetter) : context.active();
      const span = own
        ? tracer().startSpan(rpc, { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method } }, parent)
        : trace.getActiveSpan()!;
      const started = performance.now();
      const end = (code: grpc.status) => {
        const labels = { service, method, code: grpc.status[code] ?? String(code) };
        this.metrics.calls.add(1, labels);
        this.metrics.seconds.record((performance.now() - started) / 1000, labels);
        if (!own) return;
        span.setAttribute('rpc.grpc.status_code', code);
        if (code !== grpc.status.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: grpc.status[code] });
        span.end();
      };
      const authorizer = this.authorizer;
      const run = authorizer
        ? () => {
            // Who calls, then what for: UNAUTHENTICATED or PERMISSION_DENIED before any work.
            const caller = authorizer.identify(call);
            authorizer.authorize(caller, service, method, call.request);
            return handler(call.request, call);
          }
        : () => handler(call.request, call);
      context.with(trace.setSpan(parent, span), () => Promise.resolve().then(run)).then(
        (response) => {
          end(grpc.status.OK);
          callback(null, response);
        },
        (err: unknown) => {
          context.with(trace.setSpan(parent, span), () => {
            const s = toGrpcStatus(err, (ref, cause) => this.log.error({ rpc, ref, err: cause }, 'request failed'));
            if (s.code === grpc.status.UNAVAILABLE) this.onDependencyError?.(err);
            if (s.code !== grpc.status.INTERNAL) this.log.info({ rpc, code: grpc.status[s.code], reason: s.details }, 'request rejected');
            end(s.code);
            callback({ code: s.code, details: s.details, metadata: s.metadata });
          });
        },
      );
    };
  }

  /** Binds host:port (port 0 picks a free one) and returns the bound port. */
  async listen(host: string, port: number): Promise<number> {
    const bound = await bind(this.server, `${host}:${port}`, this.tls?.credentials ?? grpc.ServerCredentials.createInsecure());
    if (this.tls) {
      // The certificate reaches the bound listener on the next turn of the event loop.
      await new Promise((r) => setImmediate(r));
      this.tls.start();
    }
    return bound;
  }

  /**
   * Binds the plaintext health-only port (GRPC_HEALTH_PORT), for probes that can present neither
   * TLS nor credentials (Kubernetes gRPC probes). It answers grpc.health.v1 and nothing else.
   */
  async listenHealth(host: string, port: number): Promise<number> {
    this.healthServer = new grpc.Server();
    this.health.addToServer(this.healthServer);
    return bind(this.healthServer, `${host}:${port}`, grpc.ServerCredentials.createInsecure());
  }

  /** Sets overall and per-service health (grpc.health.v1). */
  setHealth(state: HealthStatus): void {
    this.health.setStatus('', state);
    for (const name of this.serviceNames) this.health.setStatus(name, state);
  }

  /** Stops accepting calls, lets running ones finish, and forces the rest at the deadline. */
  async shutdown(deadlineMs: number): Promise<void> {
    this.setHealth('NOT_SERVING');
    this.tls?.stop();
    this.healthServer?.forceShutdown();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, deadlineMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

const bind = (server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> =>
  new Promise((resolve, reject) => server.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound))));

const metadataGetter: TextMapGetter<grpc.Metadata> = {
  keys: (m) => Object.keys(m.getMap()),
  get: (m, key) => {
    const v = m.get(key)[0];
    return v === undefined ? undefined : v.toString();
  },
};

/** A deadline `ms` from now, for every client call (grpc-js has no default deadline). */
export const deadlineIn = (ms: number): Date => new Date(Date.now() + ms);

// Process-wide OpenTelemetry setup. Called once, first thing, from each service's instrument.ts
// (the library instrumentations patch grpc-js, kafkajs and mongoose as they are first required,
// so nothing may load them earlier). Off by default: without an exporter no tracer provider,
// propagator or instrumentation is installed, and without METRICS_PORT no meter provider, so every
// span and instrument is the API's no-op (a few ns per call).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, metrics, propagation, trace, type Meter } from '@opentelemetry/api';
import { readTelemetrySettings, type TelemetrySettings } from './settings';

// Types only: the SDK packages are required lazily, only when telemetry is on.
import type { SpanExporter, Sampler } from '@opentelemetry/sdk-trace';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

export interface TelemetryOptions {
  serviceName: string;
  /** Defaults to process.env (instrument.ts runs before config.ts can be loaded; config.ts re-checks the same keys). */
  env?: Record<string, string | undefined>;
  /** Tests: export spans here (e.g. an InMemorySpanExporter), synchronously, whatever OTEL_TRACES_EXPORTER says. */
  spanExporter?: SpanExporter;
  /** Tests: turn metrics on although METRICS_PORT is unset in this process's env. */
  metrics?: boolean;
  /** Library instrumentations (grpc, kafkajs, mongoose). Default true when tracing is on. */
  instrumentations?: boolean;
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface Telemetry {
  readonly settings: TelemetrySettings;
  readonly tracing: boolean;
  readonly metrics: boolean;
  /** Meter for the service's instruments (no-op when metrics are off). */
  meter(): Meter;
  /** Serves the Prometheus text format on GET /metrics (port 0 picks one). undefined when metrics are off. */
  startMetricsServer(host: string, port: number): Promise<MetricsServer | undefined>;
  /** Exports pending spans now (a service's stop calls it, so the last spans are not lost). */
  flush(): Promise<void>;
  /** Flushes and stops the providers (process exit). */
  shutdown(): Promise<void>;
}

const GLOBAL = Symbol.for('hookline.telemetry');
type Holder = { [GLOBAL]?: Telemetry };

/** The telemetry of this process, or undefined before initTelemetry ran. */
export function currentTelemetry(): Telemetry | undefined {
  return (globalThis as Holder)[GLOBAL];
}

/**
 * Sets up tracing and metrics for the process. Idempotent: a second call (e.g. three services
 * started in one test process) returns the first setup unchanged.
 */
export function initTelemetry(options: TelemetryOptions): Telemetry {
  const existing = currentTelemetry();
  if (existing) return existing;
  const { settings } = readTelemetrySettings(options.env ?? process.env, options.serviceName);
  const tracingOn = !settings.disabled && (options.spanExporter !== undefined || settings.tracesExporter !== 'none');
  const metricsOn = !settings.disabled && (options.metrics === true || settings.metricsPort !== undefined);
  const stops: (() => Promise<void>)[] = [];
  const flushes: (() => Promise<void>)[] = [];
  let prometheus: PrometheusExporter | undefined;

  if (tracingOn || metricsOn) {
    const { resourceFromAttributes, envDetector, detectResources } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
    const resource = detectResources({ detectors: [envDetector] }).merge(resourceFromAttributes({ 'service.name': settings.serviceName }));

    if (tracingOn) {
      const sdk = require('@opentelemetry/sdk-trace') as typeof import('@opentelemetry/sdk-trace');
      const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks') as typeof import('@opentelemetry/context-async-hooks');
      const { W3CTraceContextPropagator, W3CBaggagePropagator, CompositePropagator } = require('@opentelemetry/core') as typeof import('@opentelemetry/core');
      const processors = [];
      if (options.spanExporter) processors.push(new sdk.SimpleSpanProcessor({ exporter: options.spanExporter }));
      else if (settings.tracesExporter === 'console') processors.push(new sdk.SimpleSpanProcessor({ exporter: new sdk.ConsoleSpanExporter() }));
      else {
        // OTLP/HTTP (JSON); endpoint, headers, timeout from the standard OTEL_EXPORTER_OTLP_* variables.
        const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
        processors.push(new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter() }));
      }
      const provider = new sdk.TracerProvider({ resource, sampler: makeSampler(sdk, settings), spanProcessors: processors });
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
      trace.setGlobalTracerProvider(provider);
      stops.push(() => provider.shutdown());
      flushes.push(() => provider.forceFlush());
      if (options.instrumentations ?? true) registerLibraryInstrumentations();
    }

    if (metricsOn) {
      const { MeterProvider } = require('@opentelemetry/sdk-metrics') as typeof import('@opentelemetry/sdk-metrics');
      const { PrometheusExporter: Exporter } = require('@opentelemetry/exporter-prometheus') as typeof import('@opentelemetry/exporter-prometheus');
      // Served by our own server (startMetricsServer) so the bound port is known and port 0 works.
      prometheus = new Exporter({ preventServerStart: true, withoutScopeInfo: true });
      const provider = new MeterProvider({ resource, readers: [prometheus] });
      metrics.setGlobalMeterProvider(provider);
      stops.push(() => provider.shutdown());
    }
  }

  const t: Telemetry = {
    settings,
    tracing: tracingOn,
    metrics: metricsOn,
    meter: () => metrics.getMeter('hookline'),
    async startMetricsServer(host, port) {
      if (!prometheus) return undefined;
      const exporter = prometheus;
      const srv = createServer((req, res) => {
        if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) return exporter.getMetricsRequestHandler(req, res);
        res.statusCode = 404;
        res.end('not found: metrics are served on GET /metrics\n');
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(port, host, () => resolve());
      });
      return {
        port: (srv.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            srv.closeAllConnections();
            srv.close(() => r());
          }),
      };
    },
    async flush() {
      for (const f of flushes) await f().catch(() => undefined);
    },
    async shutdown() {
      for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
    },
  };
  (globalThis as Holder)[GLOBAL] = t;
  return t;
}

function makeSampler(sdk: typeof import('@opentelemetry/sdk-trace'), s: TelemetrySettings): Sampler {
  switch (s.sampler) {
    case 'always_on':
      return new sdk.AlwaysOnSampler();
    case 'always_off':
      return new sdk.AlwaysOffSampler();
    case 'traceidratio':
      return new sdk.TraceIdRatioBasedSampler(s.samplerRatio);
    case 'parentbased_always_off':
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(s.samplerRatio) });
    default:
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
  }
}

/**
 * grpc-js (client and server spans, context in metadata), kafkajs (producer and consumer spans,
 * context in record headers) and mongoose (one span per query). undici is deliberately not
 * instrumented by the library: its instrumentation always injects `traceparent` into outgoing
 * requests, and our only undici traffic is webhook deliveries to customers' endpoints, which must
 * not receive our trace ids; the dispatcher records its own `webhook.attempt` span instead.
 */
function registerLibraryInstrumentations(): void {
  const { registerInstrumentations } = require('@opentelemetry/instrumentation') as typeof import('@opentelemetry/instrumentation');
  const { GrpcInstrumentation } = require('@opentelemetry/instrumentation-grpc') as typeof import('@opentelemetry/instrumentation-grpc');
  const { KafkaJsInstrumentation } = require('@opentelemetry/instrumentation-kafkajs') as typeof import('@opentelemetry/instrumentation-kafkajs');
  const { MongooseInstrumentation } = require('@opentelemetry/instrumentation-mongoose') as typeof import('@opentelemetry/instrumentation-mongoose');
  registerInstrumentations({
    instrumentations: [
      // Health checks and reflection are probes, not work: no spans for them.
      new GrpcInstrumentation({ ignoreGrpcMethods: [/^Check$/, /^Watch$/, /ServerReflectionInfo/] }),
      new KafkaJsInstrumentation(),
      new MongooseInstrumentation({ suppressInternalInstrumentation: true }),
    ],
  });
}

// Telemetry settings from the standard OTEL_* variables plus METRICS_PORT / METRICS_HOST.
// Read by initTelemetry (instrument.ts, before anything else loads) and checked again by each
// service's config.ts, which lists these problems with every other bad key and refuses to start.
// Pure: no OpenTelemetry SDK is loaded here.

export type TracesExporter = 'otlp' | 'console' | 'none';
export type SamplerName = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

export interface TelemetrySettings {
  /** OTEL_SDK_DISABLED=true turns traces and metrics off whatever else is set. */
  disabled: boolean;
  serviceName: string;
  /** `none` (the default unless an OTLP endpoint is set): no tracer provider, no instrumentation. */
  tracesExporter: TracesExporter;
  sampler: SamplerName;
  /** Ratio for the *traceidratio samplers, 0..1. Default 1. */
  samplerRatio: number;
  /** Prometheus scrape port; undefined = metrics off (no-op instruments). 0 picks a free port. */
  metricsPort: number | undefined;
  metricsHost: string;
}

const EXPORTERS: readonly TracesExporter[] = ['otlp', 'console', 'none'];
const SAMPLERS: readonly SamplerName[] = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];

type Env = Record<string, string | undefined>;

const value = (env: Env, name: string): string | undefined => {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
};

/** Parses the telemetry keys; `problems` lists every bad value (empty when all is well). */
export function readTelemetrySettings(env: Env, defaultServiceName: string): { settings: TelemetrySettings; problems: string[] } {
  const problems: string[] = [];
  const disabledRaw = value(env, 'OTEL_SDK_DISABLED');
  let disabled = false;
  if (disabledRaw !== undefined) {
    if (/^(true|1)$/i.test(disabledRaw)) disabled = true;
    else if (!/^(false|0)$/i.test(disabledRaw)) problems.push(`OTEL_SDK_DISABLED=${JSON.stringify(disabledRaw)} is not a boolean (true/false)`);
  }

  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
    const v = value(env, name);
    if (v === undefined) continue;
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(v).protocol);
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`${name}=${JSON.stringify(v)} is not an http(s) URL`);
  }
  const protocol = value(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? value(env, 'OTEL_EXPORTER_OTLP_PROTOCOL');
  if (protocol !== undefined && protocol !== 'http/json') problems.push(`OTEL_EXPORTER_OTLP_PROTOCOL=${JSON.stringify(protocol)}: only http/json is supported (the OTLP/HTTP JSON exporter)`);

  const endpointSet = value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined || value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined;
  let tracesExporter: TracesExporter = endpointSet ? 'otlp' : 'none';
  const exporterRaw = value(env, 'OTEL_TRACES_EXPORTER');
  if (exporterRaw !== undefined) {
    if ((EXPORTERS as readonly string[]).includes(exporterRaw)) tracesExporter = exporterRaw as TracesExporter;
    else problems.push(`OTEL_TRACES_EXPORTER=${JSON.stringify(exporterRaw)} must be one of ${EXPORTERS.join(', ')}`);
  }

  let sampler: SamplerName = 'parentbased_always_on';
  const samplerRaw = value(env, 'OTEL_TRACES_SAMPLER');
  if (samplerRaw !== undefined) {
    if ((SAMPLERS as readonly string[]).includes(samplerRaw)) sampler = samplerRaw as SamplerName;
    else problems.push(`OTEL_TRACES_SAMPLER=${JSON.stringify(samplerRaw)} must be one of ${SAMPLERS.join(', ')}`);
  }
  let samplerRatio = 1;
  const ratioRaw = value(env, 'OTEL_TRACES_SAMPLER_ARG');
  if (ratioRaw !== undefined) {
    const n = Number(ratioRaw);
    if (!Number.isFinite(n) || n < 0 || n > 1) problems.push(`OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(ratioRaw)} must be a number from 0 to 1`);
    else samplerRatio = n;
  }

  let metricsPort: number | undefined;
  const portRaw = value(env, 'METRICS_PORT');
  if (portRaw !== undefined) {
    const n = Number(portRaw);
    if (!Number.isInteger(n) || n < 0 || n > 65535) problems.push(`METRICS_PORT=${JSON.stringify(portRaw)} must be a port number 0..65535 (unset = no metrics endpoint)`);
    else metricsPort = n;
  }

  return {
    settings: {
      disabled,
      serviceName: value(env, 'OTEL_SERVICE_NAME') ?? defaultServiceName,
      tracesExporter: disabled ? 'none' : tracesExporter,
      sampler,
      samplerRatio,
      metricsPort: disabled ? undefined : metricsPort,
      metricsHost: value(env, 'METRICS_HOST') ?? '0.0.0.0',
    },
    problems,
  };
}

// endpoint-registry's Prometheus endpoint carries the service metrics every service has: calls by
// method and status code, and their latency (service-kit's gRPC adapter records them).
import { status } from '@grpc/grpc-js';
import { initTelemetry } from '@hookline/telemetry';
import { calls, expectCode, startRegistry, type RegistryHarness } from './harness';

jest.setTimeout(60_000);

// Once for this test process, before the registry starts (metrics only, no tracing).
initTelemetry({ serviceName: 'hookline-test', env: {}, metrics: true, instrumentations: false });

async function scrape(port: number): Promise<(name: string, labels: Record<string, string>) => number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return (name, labels) => {
    let sum = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m || m[1] !== name) continue;
      const have: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[l[1]!] = l[2]!;
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
    }
    return sum;
  };
}

describe('endpoint-registry metrics', () => {
  let h: RegistryHarness;
  beforeAll(async () => {
    h = await startRegistry({ label: 'met', env: { METRICS_PORT: '0', METRICS_HOST: '127.0.0.1' } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('counts calls by method and code, and records their latency', async () => {
    const c = calls(h.client);
    const service = 'webhooks.endpoints.v1.EndpointRegistryService';
    const before = await scrape(h.app.metricsPort!);
    const ok = { service, method: 'ListEventTypes', code: 'OK' };
    const notFound = { service, method: 'GetEventType', code: 'NOT_FOUND' };
    await c.listEventTypes({});
    await c.listEventTypes({});
    await expectCode(c.getEventType({ name: 'no.such_type' }), status.NOT_FOUND);
    const after = await scrape(h.app.metricsPort!);
    expect(after('hookline_rpc_server_calls_total', ok) - before('hookline_rpc_server_calls_total', ok)).toBe(2);
    expect(after('hookline_rpc_server_calls_total', notFound) - before('hookline_rpc_server_calls_total', notFound)).toBe(1);
    expect(after('hookline_rpc_server_seconds_count', ok) - before('hookline_rpc_server_seconds_count', ok)).toBe(2);
    expect(after('hookline_rpc_server_seconds_bucket', { ...ok, le: '+Inf' })).toBe(after('hookline_rpc_server_seconds_count', ok));
  });
});

// Telemetry of the whole path, in one process with one in-memory span exporter: a published event
// is one trace from PublishEvent through Kafka to the HTTP attempt; the Prometheus endpoint's
// counters move by exactly what was delivered; no log line carries a secret or a signature.
import { Writable } from 'node:stream';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { initTelemetry } from '@hookline/telemetry';
import { createLogger } from '@hookline/service-kit';
import { eventually, rpc, uniquePrefix } from '@hookline/testing';
import { createEndpoint, EVENT_TYPE, publish, startPlatform, type Platform } from './harness';

jest.setTimeout(60_000);

// Registered once for this test process, before any service starts. Library instrumentations are
// not loaded here (jest's module loader bypasses require hooks); our own spans carry the trace.
const exporter = new InMemorySpanExporter();
initTelemetry({ serviceName: 'hookline-test', env: {}, spanExporter: exporter, metrics: true, instrumentations: false });

const logLines: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logLines.push(chunk.toString());
    cb();
  },
});

/** Prometheus text → samples, e.g. `hookline_deliveries_total{outcome="succeeded",status_class="2xx"}`. */
async function scrape(port: number): Promise<{ value(name: string, labels?: Record<string, string>): number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return {
    text,
    value: (name, labels = {}) =>
      samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0),
  };
}

describe('telemetry', () => {
  const prefix = uniquePrefix('tel');
  let p: Platform;
  let n = 0;
  const workspace = () => `ws_${prefix}_${++n}`;

  beforeAll(async () => {
    p = await startPlatform(
      prefix,
      { TARGET_ALLOWLIST: '127.0.0.1/32', RETRY_SCHEDULE: '200ms,200ms', RETRY_JITTER_PERCENT: '0', SCHEDULER_INTERVAL_MS: '100', METRICS_PORT: '0', METRICS_HOST: '127.0.0.1' },
      undefined,
      // Every service logs at the most verbose level into one buffer.
      (service) => createLogger(service, 'trace', logSink),
    );
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('one trace links PublishEvent, the Kafka produce, the intake, the registry lookup, the signing and the HTTP attempt', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/traced', { status: 202 });
    const ep = await createEndpoint(p, ws, p.receiver.url('/traced'));
    exporter.reset();
    const eventId = await publish(p, ws, { order_id: 'o-traced' });
    await eventually(() => (p.receiver.on('/traced').length === 1 ? true : undefined), 20_000, 'the delivery');
    const spans = await eventually(() => {
      const all = exporter.getFinishedSpans();
      const attempt = all.find((s) => s.name === 'webhook.attempt' && s.attributes['hookline.attempt'] === 1);
      return attempt && all.some((s) => s.name === 'webhook.deliver' && s.attributes['hookline.event_id'] === eventId) ? all : undefined;
    }, 10_000, 'the attempt span');

    const publishRpc = spans.find((s) => s.name === 'webhooks.events.v1.EventIngestService/PublishEvent')!;
    expect(publishRpc).toBeDefined();
    const traceId = publishRpc.spanContext().traceId;
    const inTrace = spans.filter((s) => s.spanContext().traceId === traceId);
    const byName = (name: string) => inTrace.filter((s) => s.name === name);
    const one = (name: string): ReadableSpan => {
      const found = byName(name);
      expect({ name, count: found.length }).toEqual({ name, count: 1 });
      return found[0]!;
    };
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

    const produce = one(`${prefix}.events publish`);
    const intake = one('webhook.intake');
    const lookup = one('subscribers.resolve');
    const deliver = one('webhook.deliver');
    const sign = one('webhook.sign');
    const attempt = one('webhook.attempt');
    // The registry's own server span for the lookup, reached through gRPC metadata.
    const registry = one('webhooks.endpoints.v1.EndpointRegistryService/ResolveSubscribers');

    expect(parentOf(produce)).toBe(publishRpc.spanContext().spanId);
    expect(parentOf(intake)).toBe(produce.spanContext().spanId); // through the Kafka record's headers
    expect(parentOf(lookup)).toBe(intake.spanContext().spanId);
    expect(parentOf(registry)).toBe(lookup.spanContext().spanId);
    expect(parentOf(deliver)).toBe(intake.spanContext().spanId); // carried on the queued job
    expect(parentOf(sign)).toBe(deliver.spanContext().spanId);
    expect(parentOf(attempt)).toBe(deliver.spanContext().spanId);
    expect(intake.attributes).toMatchObject({ 'hookline.event_id': eventId, 'hookline.event_type': EVENT_TYPE });
    expect(deliver.attributes).toMatchObject({ 'hookline.endpoint_id': ep.id, 'hookline.outcome': 'succeeded' });
    expect(attempt.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.response.status_code': 202, 'server.address': 'localhost', 'network.peer.address': '127.0.0.1' });
    // Never the URL's path (tokens live there) nor anything of the body.
    expect(JSON.stringify(inTrace.map((s) => s.attributes))).not.toContain('/traced');

    // The dispatcher's log line for the outcome carries this trace's id.
    const outcome = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'delivery attempt' && l.eventId === eventId);
    expect(outcome).toMatchObject({ trace_id: traceId, outcome: 'succeeded', status: 202 });
  });

  it('a retry picked up by the scheduler is a new trace linked to the original', async () => {
    const ws = workspace();
    let calls = 0;
    p.receiver.behaviour.set('/retried', () => (++calls === 1 ? { status: 503, body: 'busy' } : { status: 200 }));
    await createEndpoint(p, ws, p.receiver.url('/retried'));
    exporter.reset();
    const eventId = await publish(p, ws, { order_id: 'o-retried' });
    const delivers = await eventually(() => {
      const d = exporter.getFinishedSpans().filter((s) => s.name === 'webhook.deliver' && s.attributes['hookline.event_id'] === eventId);
      return d.length === 2 ? d : undefined;
    }, 20_000, 'two attempts');
    const [first, second] = delivers.sort((a, b) => Number(a.attributes['hookline.attempt']) - Number(b.attributes['hookline.attempt']));
    expect(second!.spanContext().traceId).not.toBe(first!.spanContext().traceId);
    expect(second!.links.map((l) => l.context.traceId)).toEqual([first!.spanContext().traceId]);
  });

  it('the Prometheus endpoint counts deliveries, retries, lag and ingest results by exactly what happened', async () => {
    const port = p.dispatcher.metricsPort!;
    expect(port).toBeGreaterThan(0);
    const ws = workspace();
    p.receiver.behaviour.set('/ok', { status: 200 });
    p.receiver.behaviour.set('/down', { status: 500 });
    await createEndpoint(p, ws, p.receiver.url('/ok'));
    const wsDown = workspace();
    await createEndpoint(p, wsDown, p.receiver.url('/down'));
    // Let earlier tests' work settle, then take the baseline.
    await new Promise((r) => setTimeout(r, 500));
    const before = await scrape(port);

    for (let i = 0; i < 3; i++) await publish(p, ws, { order_id: `o-ok-${i}` });
    await publish(p, wsDown, { order_id: 'o-down' });
    const keyed = { workspaceId: ws, eventType: EVENT_TYPE, payload: Buffer.from(JSON.stringify({ order_id: 'o-keyed' })), idempotencyKey: `k-${prefix}` };
    await rpc(p.ingest.publishEvent.bind(p.ingest), { event: keyed });
    await rpc(p.ingest.publishEvent.bind(p.ingest), { event: keyed }); // duplicate
    await expect(rpc(p.ingest.publishEvent.bind(p.ingest), { event: { ...keyed, idempotencyKey: '', payload: Buffer.from('{"total":1}') } })).rejects.toThrow(); // schema: order_id missing

    // 4 successes to /ok; /down: attempt 1 and 2 retried, attempt 3 the last (RETRY_SCHEDULE has 2 retries).
    await eventually(() => (p.receiver.on('/ok').length >= 4 && p.receiver.on('/down').length >= 3 ? true : undefined), 20_000, 'all attempts');
    const after = await eventually(async () => {
      const s = await scrape(port);
      return s.value('hookline_deliveries_total', { outcome: 'failed' }) - before.value('hookline_deliveries_total', { outcome: 'failed' }) >= 1 ? s : undefined;
    }, 10_000, 'the final failure to be counted');
    const delta = (name: string, labels?: Record<string, string>) => after.value(name, labels) - before.value(name, labels);

    expect(delta('hookline_deliveries_total', { outcome: 'succeeded', status_class: '2xx' })).toBe(4);
    expect(delta('hookline_deliveries_total', { outcome: 'retry', status_class: '5xx' })).toBe(2);
    expect(delta('hookline_deliveries_total', { outcome: 'failed', status_class: '5xx' })).toBe(1);
    expect(delta('hookline_deliveries_total')).toBe(7);
    expect(delta('hookline_retries_scheduled_total')).toBe(2);
    expect(delta('hookline_delivery_attempt_seconds_count')).toBe(7);
    expect(delta('hookline_delivery_lag_seconds_count')).toBe(4);
    expect(delta('hookline_ingest_events_total', { result: 'accepted', transport: 'grpc' })).toBe(5);
    expect(delta('hookline_ingest_events_total', { result: 'duplicate', transport: 'grpc' })).toBe(1);
    expect(delta('hookline_ingest_events_total', { result: 'rejected', transport: 'grpc', code: 'INVALID_ARGUMENT' })).toBe(1);
    expect(delta('hookline_endpoints_disabled_total')).toBe(0);
    // Consumer lag per topic and partition: the events topic, and a retry tier (the retries waiting there).
    expect(after.text).toMatch(/^hookline_consumer_lag\{[^}]*partition="\d+"[^}]*\} \d+/m);
    expect(after.text).toMatch(/^hookline_consumer_lag\{[^}]*topic="[^"]*\.retry\.[^"]*"[^}]*\} \d+/m);
    // Retries parked behind open circuits (none here: 2 failures in a row open no circuit).
    expect(after.text).toMatch(/^hookline_deliveries_parked(\{[^}]*\})? 0$/m);
    expect(after.text).toMatch(/^hookline_circuits_open(\{[^}]*\})? 0$/m);
    // Nothing held once all is settled (a task is let go just after its outcome is counted, so
    // the scrape that saw the last outcome may still see it held), and no failed probe's retry
    // waiting.
    const settled = await eventually(async () => {
      const s = await scrape(port);
      return /^hookline_deliveries_held_bytes(\{[^}]*\})? 0$/m.test(s.text) ? s : undefined;
    }, 10_000, 'nothing held');
    expect(settled.text).toMatch(/^hookline_retries_early(\{[^}]*\})? 0$/m);
  });

  it('no log line of any service carries a secret, a signature or a payload', async () => {
    const ws = workspace();
    p.receiver.behaviour.set('/std', { status: 200 });
    const ep = await createEndpoint(p, ws, p.receiver.url('/std'), true);
    const marker = `payload-marker-${prefix}`;
    await publish(p, ws, { order_id: marker });
    const got = await eventually(() => p.receiver.on('/std')[0], 20_000, 'the delivery');
    await new Promise((r) => setTimeout(r, 300)); // the outcome's log line follows the response
    const sig256 = got.headers['x-signature-256'] as string;
    const std = got.headers['webhook-signature'] as string;
    expect(sig256).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(std).toMatch(/^v1,/);
    const logs = logLines.join('');
    expect(logs).toContain('delivery attempt'); // we did capture the services' logs
    expect(logs).toContain(ep.id);
    for (const needle of [ep.secret, ep.secret.slice('whsec_'.length), sig256, sig256.slice('sha256='.length), std, std.slice(3), marker]) {
      expect(logs.includes(needle) ? needle : 'absent').toBe('absent');
    }
  });
});

// The thin slice, end to end: three service processes, the real broker and database, and an
// HTTPS receiver. One endpoint, one event, one signed delivery that verifies with libs/signing
// and with the product guide's Python receiver snippet, run unmodified under python3.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { deliveryV1, endpointsV1, eventsV1 } from '@hookline/proto';
import { verifySignature256 } from '@hookline/signing';
import {
  eventually,
  infraFromEnv,
  isolatedServiceEnv,
  makeTestPki,
  rpc,
  startService,
  TestReceiver,
  uniquePrefix,
  type ServiceProcess,
  type TestPki,
} from '@hookline/testing';

jest.setTimeout(120_000);

const PYTHON_RECEIVER = `
import hashlib, hmac, sys

def verify(secret, payload_body, signature_header):
    # The product guide's receiver code, unmodified:
    expected = hmac.new(secret.encode(), payload_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature_header)

secret, body_file, signature_header = sys.argv[1], sys.argv[2], sys.argv[3]
with open(body_file, "rb") as f:
    ok = verify(secret, f.read(), signature_header)
print("verified" if ok else "rejected")
sys.exit(0 if ok else 1)
`;

describe('one event delivered end to end', () => {
  const infra = infraFromEnv();
  const prefix = uniquePrefix('e2e');
  let pki: TestPki;
  let receiver: TestReceiver;
  const services: ServiceProcess[] = [];
  let registry: endpointsV1.EndpointRegistryServiceClient;
  let ingest: eventsV1.EventIngestServiceClient;
  let delivery: deliveryV1.DeliveryServiceClient;

  beforeAll(async () => {
    pki = makeTestPki();
    receiver = new TestReceiver(pki);
    await receiver.start();
    const base = isolatedServiceEnv(infra, prefix);
    const allow = { TARGET_ALLOWLIST: 'localhost,127.0.0.1/32,::1/128' };
    const reg = await startService('endpoint-registry', {
      ...base,
      ...allow,
      MONGODB_DATABASE: `${prefix}_registry`,
      SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    });
    services.push(reg);
    const registryAddress = `127.0.0.1:${reg.port}`;
    const [ing, dis] = await Promise.all([
      startService('event-ingest', { ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress }),
      startService('dispatcher', { ...base, ...allow, MONGODB_DATABASE: `${prefix}_dispatcher`, REGISTRY_ADDRESS: registryAddress, NODE_EXTRA_CA_CERTS: pki.caFile }),
    ]);
    services.push(ing, dis);
    const creds = grpc.credentials.createInsecure();
    registry = new endpointsV1.EndpointRegistryServiceClient(registryAddress, creds);
    ingest = new eventsV1.EventIngestServiceClient(`127.0.0.1:${ing.port}`, creds);
    delivery = new deliveryV1.DeliveryServiceClient(`127.0.0.1:${dis.port}`, creds);
  });

  afterAll(async () => {
    registry?.close();
    ingest?.close();
    delivery?.close();
    await Promise.all(services.map((s) => s.stop()));
    await receiver?.stop();
  });

  it('delivers a signed POST that both verifiers accept, and records the attempt', async () => {
    await rpc(registry.createEventType.bind(registry), {
      name: 'invoice.paid',
      description: 'An invoice was paid',
      schemaJson: JSON.stringify({ type: 'object', required: ['invoice_id', 'amount'], properties: { invoice_id: { type: 'string' }, amount: { type: 'integer', minimum: 0 } } }),
      exampleJson: JSON.stringify({ invoice_id: 'in_example', amount: 100 }),
    });
    const workspaceId = `ws_${prefix}`;
    const created = await rpc(registry.createEndpoint.bind(registry), {
      workspaceId,
      url: receiver.url('/hook'),
      description: 'e2e receiver',
      subscription: { selection: { $case: 'eventTypes', value: { names: ['invoice.paid'] } } },
      requestId: '',
      standardWebhooks: false,
    });
    expect(created.secret).toMatch(/^whsec_/);

    const payload = Buffer.from(JSON.stringify({ invoice_id: 'in_42', amount: 4200, note: 'héllo ✓' }), 'utf8');
    const published = await rpc(ingest.publishEvent.bind(ingest), { event: { workspaceId, eventType: 'invoice.paid', payload, idempotencyKey: 'order-42' } });
    expect(published.eventId).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(published.duplicate).toBe(false);

    const got = await eventually(() => receiver.on('/hook')[0], 60_000, 'the delivery to reach the receiver');
    expect(got.method).toBe('POST');
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['user-agent']).toMatch(/Hookline/);
    expect(got.headers['x-webhook-id']).toBe(published.eventId);
    expect(got.headers['x-webhook-event']).toBe('invoice.paid');
    expect(Number(got.headers['x-webhook-timestamp'])).toBeGreaterThan(Date.now() / 1000 - 120);
    const body = JSON.parse(got.body.toString('utf8'));
    expect(body).toEqual({ id: published.eventId, type: 'invoice.paid', created_at: published.createTime!.toISOString(), data: JSON.parse(payload.toString('utf8')) });

    const header = got.headers['x-signature-256']!;
    expect(header).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifySignature256(got.body, created.secret, header)).toBe(true);
    expect(verifySignature256(got.body, created.secret + 'x', header)).toBe(false);

    const dir = pki.dir;
    writeFileSync(path.join(dir, 'receiver.py'), PYTHON_RECEIVER);
    writeFileSync(path.join(dir, 'body.bin'), got.body);
    const py = (secret: string) =>
      execFileSync('python3', [path.join(dir, 'receiver.py'), secret, path.join(dir, 'body.bin'), header], { encoding: 'utf8' }).trim();
    expect(py(created.secret)).toBe('verified');
    expect(() => py(created.secret.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')))).toThrow();

    // Exactly one delivery of exactly that event.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(receiver.on('/hook')).toHaveLength(1);

    // Secrets and signatures never reach the logs of any service.
    for (const s of services) {
      expect(s.output()).not.toContain(created.secret);
      expect(s.output()).not.toContain(header.slice('sha256='.length));
      expect(s.output()).not.toContain('in_42');
    }

    const attempts = await eventually(async () => {
      const res = await rpc(delivery.listAttempts.bind(delivery), { workspaceId, endpointId: created.endpoint!.id, kind: 0, outcome: 0, pageSize: 10, pageToken: '', eventId: '' });
      return res.attempts.length > 0 ? res.attempts : undefined;
    }, 10_000, 'the attempt record');
    expect(attempts[0]).toMatchObject({
      eventId: published.eventId,
      outcome: deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED,
      kind: deliveryV1.AttemptKind.ATTEMPT_KIND_LIVE,
      responseStatus: 200,
      responseBody: 'ok',
      attemptNumber: 1,
      resolvedIp: '127.0.0.1',
    });
  });
});

// The receiver examples (examples/node-http-receiver.ts, examples/express-receiver.ts) run
// in-process over HTTPS and receive real deliveries from a dispatcher process: a test send signs
// with the endpoint's secret exactly as live deliveries do, and its recorded attempt carries what
// the example answered.
import { randomBytes } from 'node:crypto';
import { createHooklineClient, type HooklineClient } from '@hookline/client';
import { deliveryV1 } from '@hookline/proto';
import { infraFromEnv, isolatedServiceEnv, makeTestPki, startService, uniquePrefix, type ServiceProcess, type TestPki } from '@hookline/testing';
import { startExpressReceiver } from '../examples/express-receiver';
import { startNodeHttpReceiver, type RunningReceiver } from '../examples/node-http-receiver';

jest.setTimeout(90_000);

type Received = { id: string; type: string; created_at: string; data: unknown };

describe('receiver examples verify real dispatcher deliveries', () => {
  const infra = infraFromEnv();
  const prefix = uniquePrefix('rx');
  const workspaceId = `ws_${prefix}`;
  const example = { invoice_id: 'in_example', amount: 100, note: 'héllo ✓' };
  let pki: TestPki;
  let client: HooklineClient;
  const services: ServiceProcess[] = [];
  const receivers: RunningReceiver[] = [];

  beforeAll(async () => {
    pki = makeTestPki();
    const base = isolatedServiceEnv(infra, prefix);
    const allow = { TARGET_ALLOWLIST: 'localhost,127.0.0.1/32,::1/128' };
    const reg = await startService('endpoint-registry', { ...base, ...allow, MONGODB_DATABASE: `${prefix}_registry`, SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}` });
    services.push(reg);
    const dis = await startService('dispatcher', {
      ...base,
      ...allow,
      MONGODB_DATABASE: `${prefix}_dispatcher`,
      REGISTRY_ADDRESS: `127.0.0.1:${reg.port}`,
      NODE_EXTRA_CA_CERTS: pki.caFile,
    });
    services.push(dis);
    client = createHooklineClient({ registry: `127.0.0.1:${reg.port}`, dispatcher: `127.0.0.1:${dis.port}` });
    await client.registry.createEventType({
      name: 'invoice.paid',
      description: 'An invoice was paid',
      schemaJson: JSON.stringify({ type: 'object', required: ['invoice_id'], properties: { invoice_id: { type: 'string' } } }),
      exampleJson: JSON.stringify(example),
    });
  });

  afterAll(async () => {
    client?.close();
    await Promise.all(receivers.map((r) => r.close()));
    await Promise.all(services.map((s) => s.stop()));
  });

  async function endpointFor(url: string, standardWebhooks: boolean) {
    const created = await client.registry.createEndpoint({ workspaceId, url, standardWebhooks, subscription: { selection: { $case: 'allEvents', value: true } } });
    return { id: created.endpoint!.id, secret: created.secret };
  }

  async function testSend(endpointId: string) {
    const res = await client.delivery.sendTestEvent({ workspaceId, endpointId, eventType: 'invoice.paid' });
    return res.attempt!;
  }

  it.each([
    { name: 'node:http', start: startNodeHttpReceiver, standardWebhooks: false, scheme: 'signature-256' },
    { name: 'node:http', start: startNodeHttpReceiver, standardWebhooks: true, scheme: 'standard-webhooks' },
    { name: 'Express', start: startExpressReceiver, standardWebhooks: false, scheme: 'signature-256' },
    { name: 'Express', start: startExpressReceiver, standardWebhooks: true, scheme: 'standard-webhooks' },
  ])('$name example accepts a real delivery (standard_webhooks=$standardWebhooks, verified by $scheme) and refuses a stale secret', async ({ start, standardWebhooks, scheme }) => {
    const events: Received[] = [];
    // The endpoint needs the receiver's URL and the receiver needs the endpoint's secret: the
    // example reads the array it was given at each request, so the secret is added once known.
    const secrets: string[] = [];
    const receiver = await start({ port: 0, tls: { key: pki.key, cert: pki.cert }, secrets, onEvent: (e) => events.push(e) });
    receivers.push(receiver);
    const endpoint = await endpointFor(receiver.url, standardWebhooks);
    secrets.push(endpoint.secret);

    const ok = await testSend(endpoint.id);
    expect(ok.outcome).toBe(deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED);
    expect(ok.responseStatus).toBe(200);
    const answer = JSON.parse(ok.responseBody) as { received: string; scheme: string };
    expect(answer).toEqual({ received: ok.eventId, scheme });
    expect(events).toEqual([{ id: ok.eventId, type: 'invoice.paid', created_at: expect.any(String), data: example }]);
    expect(Object.keys(ok.requestHeaders).includes('webhook-signature')).toBe(standardWebhooks);

    // Rotate with no grace period: the dispatcher signs with the new secret only, which the
    // receiver does not know yet, so the example answers 401 and the attempt fails.
    const rotated = await client.registry.rotateEndpointSecret({ workspaceId, endpointId: endpoint.id });
    const refused = await testSend(endpoint.id);
    expect(refused.outcome).toBe(deliveryV1.AttemptOutcome.ATTEMPT_OUTCOME_FAILED);
    expect(refused.responseStatus).toBe(401);
    expect(JSON.parse(refused.responseBody)).toEqual({ error: 'bad signature', reason: 'no-match' });
    expect(events).toHaveLength(1);

    // Both secrets configured (the rotation pattern): accepted again.
    secrets.push(rotated.secret);
    const again = await testSend(endpoint.id);
    expect(again.responseStatus).toBe(200);
    expect(events.map((e) => e.id)).toEqual([ok.eventId, again.eventId]);
  });
});

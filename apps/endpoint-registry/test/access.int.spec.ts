// The three services with mutual TLS and permissions on endpoint-registry, as production runs
// them: event-ingest and the dispatcher call the registry with their own client certificates
// (their identities in the policy), an event published through ingest is delivered, and each
// identity gets only what its policy grants. In-process on the real broker and database.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRegistryClient, NO_RETRY, type HooklineError, type TlsOptions } from '@hookline/client';
import { createLogger } from '@hookline/service-kit';
import { eventually, infraFromEnv, isolatedServiceEnv, makeTestCa, makeTestPki, TestReceiver, uniquePrefix, type IssuedCert, type TestCa } from '@hookline/testing';
import { createApp as createRegistry, type RegistryApp } from '../src/app';
import { loadConfig as loadRegistryConfig } from '../src/config';
import { createApp as createIngest, type IngestApp } from '../../event-ingest/src/app';
import { loadConfig as loadIngestConfig } from '../../event-ingest/src/config';
import { createApp as createDispatcher, type DispatcherApp } from '../../dispatcher/src/app';
import { loadConfig as loadDispatcherConfig } from '../../dispatcher/src/config';

jest.setTimeout(120_000);

const REGISTRY = 'webhooks.endpoints.v1.EndpointRegistryService';
const silent = createLogger('test', 'silent');

describe('mutual TLS and permissions across the services', () => {
  const prefix = uniquePrefix('acc');
  let ca: TestCa;
  const certs: Record<string, IssuedCert> = {};
  let registry: RegistryApp;
  let ingest: IngestApp;
  let dispatcher: DispatcherApp;
  const pki = makeTestPki();
  const receiver = new TestReceiver(pki);
  const stops: (() => Promise<void>)[] = [];
  let clients: { close(): void }[] = [];

  const tls = (who: string): TlsOptions => ({ ca: ca.ca, cert: certs[who]!.cert, key: certs[who]!.key, serverName: 'localhost' });
  const registryAs = (who: string) => {
    const c = createRegistryClient({ address: `127.0.0.1:${registry.port}`, tls: tls(who), retry: NO_RETRY, timeoutMs: 5_000 });
    clients.push(c);
    return c;
  };
  const clientEnv = (who: string) => ({ REGISTRY_TLS_CA_FILE: ca.caFile, REGISTRY_TLS_CERT_FILE: certs[who]!.certFile, REGISTRY_TLS_KEY_FILE: certs[who]!.keyFile, REGISTRY_TLS_SERVER_NAME: 'localhost' });

  beforeAll(async () => {
    ca = makeTestCa('platform');
    certs.registry = ca.issue('registry', { server: true, uri: 'spiffe://hookline/endpoint-registry' });
    certs.ingest = ca.issue('ingest', { uri: 'spiffe://hookline/event-ingest' });
    certs.dispatcher = ca.issue('dispatcher', { uri: 'spiffe://hookline/dispatcher' });
    certs.admin = ca.issue('admin', { uri: 'spiffe://hookline/admin' });
    const dir = mkdtempSync(path.join(tmpdir(), 'hookline-access-'));
    const policyFile = path.join(dir, 'permissions.json');
    writeFileSync(
      policyFile,
      JSON.stringify({
        callers: [
          { name: 'admin', certificate: 'spiffe://hookline/admin', methods: ['*'], workspaces: ['*'] },
          { name: 'event-ingest', certificate: 'spiffe://hookline/event-ingest', methods: [`${REGISTRY}/GetEventType`], workspaces: ['*'] },
          { name: 'dispatcher', certificate: 'spiffe://hookline/dispatcher', methods: [`${REGISTRY}/ResolveSubscribers`, `${REGISTRY}/GetEventType`, `${REGISTRY}/DisableEndpoint`], workspaces: ['*'] },
        ],
      }),
    );
    await receiver.start();
    stops.push(async () => receiver.stop());
    const infra = infraFromEnv();
    const base = { ...isolatedServiceEnv(infra, prefix), GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: 'silent' };
    registry = createRegistry(
      loadRegistryConfig({
        ...base,
        MONGODB_DATABASE: `${prefix}_registry`,
        SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
        TARGET_ALLOWLIST: 'localhost,127.0.0.0/8',
        GRPC_TLS_CERT_FILE: certs.registry.certFile,
        GRPC_TLS_KEY_FILE: certs.registry.keyFile,
        GRPC_TLS_CLIENT_CA_FILE: ca.caFile,
        GRPC_PERMISSIONS_FILE: policyFile,
      }),
      silent,
    );
    stops.push(() => registry.stop());
    await registry.start();
    const registryAddress = `127.0.0.1:${registry.port}`;
    ingest = createIngest(loadIngestConfig({ ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress, ...clientEnv('ingest') }), silent);
    stops.push(() => ingest.stop());
    await ingest.start();
    dispatcher = createDispatcher(
      loadDispatcherConfig({ ...base, MONGODB_DATABASE: `${prefix}_dispatcher`, REGISTRY_ADDRESS: registryAddress, TARGET_ALLOWLIST: '127.0.0.1/32', ...clientEnv('dispatcher') }),
      silent,
      { ca: [pki.ca] },
    );
    stops.push(() => dispatcher.stop());
    await dispatcher.start();
    await registryAs('admin').createEventType({ name: 'order.created', schemaJson: JSON.stringify({ type: 'object' }), exampleJson: '{}' });
  });

  afterEach(() => {
    for (const c of clients) c.close();
    clients = [];
  });

  afterAll(async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  });

  it('delivers an event published through event-ingest: both services reach the registry as themselves', async () => {
    const ws = `ws_${prefix}`;
    const { endpoint } = await registryAs('admin').createEndpoint({ workspaceId: ws, url: receiver.url('/acc'), subscription: { selection: { $case: 'allEvents', value: true } } });
    const { createIngestClient } = await import('@hookline/client');
    const pub = createIngestClient({ address: `127.0.0.1:${ingest.port}`, retry: NO_RETRY });
    clients.push(pub);
    const { eventId } = await pub.publishEvent({ event: { workspaceId: ws, eventType: 'order.created', payload: Buffer.from('{"n":1}') } });
    const got = await eventually(() => receiver.on('/acc').find((r) => r.headers['x-webhook-id'] === eventId), 60_000, 'the delivery');
    expect(JSON.parse(got.body.toString()).data).toEqual({ n: 1 });
    expect(endpoint!.id).toMatch(/^ep_/);
  });

  it("refuses each service's identity what its policy does not grant", async () => {
    const fail = async (p: Promise<unknown>) => {
      const err = (await p.then(() => undefined, (e: unknown) => e)) as HooklineError | undefined;
      return err ? { code: err.codeName, details: err.details } : { code: 'OK', details: '' };
    };
    expect(await fail(registryAs('ingest').resolveSubscribers({ workspaceId: 'ws_1', eventType: 'order.created' }))).toEqual({
      code: 'PERMISSION_DENIED',
      details: expect.stringContaining(`caller "event-ingest" may not call ${REGISTRY}/ResolveSubscribers`),
    });
    expect(await fail(registryAs('dispatcher').rotateEndpointSecret({ workspaceId: 'ws_1', endpointId: 'ep_1' }))).toEqual({
      code: 'PERMISSION_DENIED',
      details: expect.stringContaining(`caller "dispatcher" may not call ${REGISTRY}/RotateEndpointSecret`),
    });
  });
});

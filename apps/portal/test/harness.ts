// The whole stack for the portal's tests: endpoint-registry, event-ingest, dispatcher and the
// portal as separate processes on the real Kafka and FerretDB (started by scripts/test.sh), an
// HTTPS receiver, an event-type catalog, and helpers to make one-time links and sessions.
import { randomBytes } from 'node:crypto';
import { createIngestClient, createPortalClient, createRegistryClient, type IngestClient, type PortalClient, type RegistryClient } from '@hookline/client';
import { infraFromEnv, isolatedServiceEnv, makeTestPki, startService, TestReceiver, uniquePrefix, type ServiceProcess, type TestPki } from '@hookline/testing';

export const EVENT_TYPES = [
  {
    name: 'invoice.paid',
    description: 'An invoice was paid in full.',
    schemaJson: JSON.stringify({ type: 'object', required: ['invoice_id', 'amount'], properties: { invoice_id: { type: 'string' }, amount: { type: 'integer', minimum: 0 } } }),
    exampleJson: JSON.stringify({ invoice_id: 'in_example', amount: 100 }),
  },
  {
    name: 'invoice.voided',
    description: 'An invoice was voided.',
    schemaJson: JSON.stringify({ type: 'object', required: ['invoice_id'], properties: { invoice_id: { type: 'string' } } }),
    exampleJson: JSON.stringify({ invoice_id: 'in_void' }),
  },
];

export interface Stack {
  pki: TestPki;
  receiver: TestReceiver;
  services: ServiceProcess[];
  portal: ServiceProcess;
  /** http://localhost:<port> */
  portalUrl: string;
  registry: RegistryClient & { close(): void };
  ingest: IngestClient & { close(): void };
  portalRpc: PortalClient & { close(): void };
  /** The key ids and keys the portal was started with (first signs). */
  keys: { id: string; key: Buffer }[];
  prefix: string;
  stop(): Promise<void>;
}

export async function startStack(opts: { signingKeys?: { id: string; key: Buffer }[]; portalEnv?: Record<string, string>; dispatcherEnv?: Record<string, string> } = {}): Promise<Stack> {
  const infra = infraFromEnv();
  const prefix = uniquePrefix('portal');
  const pki = makeTestPki();
  const receiver = new TestReceiver(pki);
  await receiver.start();
  const base = isolatedServiceEnv(infra, prefix);
  const allow = { TARGET_ALLOWLIST: 'localhost,127.0.0.1/32,::1/128' };
  const services: ServiceProcess[] = [];
  const reg = await startService('endpoint-registry', { ...base, ...allow, MONGODB_DATABASE: `${prefix}_registry`, SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}` });
  services.push(reg);
  const registryAddress = `127.0.0.1:${reg.port}`;
  const [ing, dis] = await Promise.all([
    startService('event-ingest', { ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress }),
    startService('dispatcher', { ...base, ...allow, MONGODB_DATABASE: `${prefix}_dispatcher`, REGISTRY_ADDRESS: registryAddress, NODE_EXTRA_CA_CERTS: pki.caFile, ...(opts.dispatcherEnv ?? {}) }),
  ]);
  services.push(ing, dis);
  const keys = opts.signingKeys ?? [{ id: 'k2', key: randomBytes(32) }];
  const portal = await startService('portal', {
    MONGODB_URI: infra.mongoUri,
    MONGODB_DATABASE: `${prefix}_portal`,
    REGISTRY_ADDRESS: registryAddress,
    DISPATCHER_ADDRESS: `127.0.0.1:${dis.port}`,
    PORTAL_HTTP_HOST: '127.0.0.1',
    PORTAL_HTTP_PORT: '0',
    PORTAL_SIGNING_KEYS: keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(','),
    PORTAL_TARGET_ALLOWLIST: allow.TARGET_ALLOWLIST,
    LOG_LEVEL: 'debug',
    ...(opts.portalEnv ?? {}),
  });
  services.push(portal);
  const httpPort = Number(/"httpPort":(\d+)/.exec(portal.output())?.[1]);
  const registry = createRegistryClient({ address: registryAddress });
  const ingest = createIngestClient({ address: `127.0.0.1:${ing.port}` });
  const portalRpc = createPortalClient({ address: `127.0.0.1:${portal.port}` });
  for (const t of EVENT_TYPES) await registry.createEventType(t).catch((e: { codeName?: string }) => (e.codeName === 'ALREADY_EXISTS' ? undefined : Promise.reject(e)));
  return {
    pki,
    receiver,
    services,
    portal,
    portalUrl: `http://localhost:${httpPort}`,
    registry,
    ingest,
    portalRpc,
    keys,
    prefix,
    async stop() {
      registry.close();
      ingest.close();
      portalRpc.close();
      await Promise.all(services.map((s) => s.stop()));
      await receiver.stop();
    },
  };
}

/** A one-time link's token (the part after #token=). */
export async function linkToken(stack: Stack, workspaceId: string, readOnly = false, ttlSeconds = 0): Promise<string> {
  const r = await stack.portalRpc.createPortalSession({ workspaceId, readOnly, ...(ttlSeconds ? { ttl: { seconds: String(ttlSeconds), nanos: 0 } } : {}) });
  const m = /#token=(.+)$/.exec(r.url);
  if (!m) throw new Error(`unexpected portal link ${r.url}`);
  return m[1]!;
}

/** A cookie-carrying HTTP client for the portal's JSON API (what the browser does, by hand). */
export class PortalHttp {
  cookie = '';
  csrf = '';
  constructor(private readonly base: string) {}

  async open(token: string): Promise<Response> {
    const res = await this.request('POST', '/api/session', { token }, { csrf: false });
    const set = res.headers.getSetCookie().find((c) => c.startsWith('__Host-hookline_portal='));
    if (set) this.cookie = set.split(';')[0]!;
    if (res.ok) this.csrf = ((await res.clone().json()) as { csrfToken: string }).csrfToken;
    return res;
  }

  request(method: string, path: string, body?: unknown, o: { csrf?: boolean; cookie?: string; contentType?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    const cookie = o.cookie ?? this.cookie;
    if (cookie) headers.cookie = cookie;
    if (o.csrf !== false && this.csrf) headers['x-csrf-token'] = this.csrf;
    if (body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    return fetch(this.base + path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  }

  async json<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T; text: string }> {
    const res = await this.request(method, path, body);
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, text };
  }
}

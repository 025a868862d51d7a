// gRPC TLS, mutual TLS and caller permissions of service-kit's GrpcServer, through libs/client
// (what the CLI and other callers use). The server serves the EndpointRegistryService contract
// with handlers that answer empty messages: what is under test is who gets through, not the
// registry. Certificates are made by openssl at test time.
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createRegistryClient, NO_RETRY, type HooklineError, type TlsOptions } from '@hookline/client';
import { endpointsV1 } from '@hookline/proto';
import { eventually, grpcurl, grpcurlBinary, makeTestCa, type IssuedCert, type TestCa } from '@hookline/testing';
import { createLogger, EnvReader, GrpcServer, readGrpcServerSecurity, sha256Hex, type AsyncService } from '../src';

jest.setTimeout(60_000);

const SERVICE = 'webhooks.endpoints.v1.EndpointRegistryService';
const TOKEN = 'hl_test_token_0123456789abcdef';

/** Handlers for every method, answering the empty response: enough to see a call get through. */
function emptyHandlers(): AsyncService<endpointsV1.EndpointRegistryServiceServer> {
  const out: Record<string, () => Promise<unknown>> = {};
  for (const [key, def] of Object.entries(endpointsV1.EndpointRegistryServiceService)) out[key] = async () => def.responseDeserialize(Buffer.alloc(0));
  return out as unknown as AsyncService<endpointsV1.EndpointRegistryServiceServer>;
}

const policy = {
  callers: [
    { name: 'admin', certificate: 'spiffe://hookline/admin', methods: ['*'], workspaces: ['*'] },
    { name: 'acme-tool', certificate: 'acme-tool', methods: [`${SERVICE}/GetEndpoint`, `${SERVICE}/ListEndpoints`], workspaces: ['acme-*', 'ws_exact'] },
    { name: 'catalog-reader', tokenSha256: sha256Hex(TOKEN), methods: [`${SERVICE}/ListEventTypes`, `${SERVICE}/GetEndpoint`], workspaces: ['ws_token'] },
  ],
};

interface Started {
  server: GrpcServer;
  port: number;
  healthPort: number | undefined;
}

async function start(env: Record<string, string>): Promise<Started> {
  const r = new EnvReader(env);
  const security = readGrpcServerSecurity(r);
  r.done();
  const server = new GrpcServer(createLogger('test', 'silent'));
  server.add(endpointsV1.EndpointRegistryServiceService, SERVICE, emptyHandlers());
  server.secure(security);
  const port = await server.listen('127.0.0.1', 0);
  const healthPort = security.healthPort === undefined ? undefined : await server.listenHealth('127.0.0.1', security.healthPort);
  server.setHealth('SERVING');
  return { server, port, healthPort };
}

async function code(p: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await p;
    return { code: 'OK', details: '' };
  } catch (err) {
    const e = err as HooklineError;
    return { code: e.codeName, details: e.details };
  }
}

describe('gRPC mutual TLS and permissions', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let dir: string;
  let s: Started;
  let clients: { close(): void }[] = [];
  const certs: Record<string, IssuedCert> = {};

  // The server is named (its certificate is for localhost too): grpc-js would send the IP as the
  // TLS server name, which Node warns about (DEP0123).
  const client = (tls: TlsOptions | false, extra: { bearerToken?: string } = {}, port = s.port) => {
    const c = createRegistryClient({ address: `127.0.0.1:${port}`, tls: tls && { serverName: 'localhost', ...tls }, retry: NO_RETRY, timeoutMs: 5_000, ...extra });
    clients.push(c);
    return c;
  };
  const withCert = (name: string, trust = ca.ca): TlsOptions => ({ ca: trust, cert: certs[name]!.cert, key: certs[name]!.key });

  beforeAll(async () => {
    grpcurlBinary(); // built once per machine, before any timed call
    ca = makeTestCa('trusted');
    otherCa = makeTestCa('other');
    certs.server = ca.issue('server', { server: true });
    certs.admin = ca.issue('admin', { uri: 'spiffe://hookline/admin' });
    certs.acme = ca.issue('acme', { cn: 'acme-tool' });
    certs.stranger = ca.issue('stranger', { uri: 'spiffe://hookline/stranger' });
    certs.expired = ca.issue('expired', { uri: 'spiffe://hookline/admin', expired: true });
    certs.foreign = otherCa.issue('foreign', { uri: 'spiffe://hookline/admin' });
    // The server reads its files from here; the rotation test overwrites them.
    dir = mkdtempSync(path.join(tmpdir(), 'hookline-grpc-tls-'));
    copyFileSync(certs.server.certFile, path.join(dir, 'tls.crt'));
    copyFileSync(certs.server.keyFile, path.join(dir, 'tls.key'));
    writeFileSync(path.join(dir, 'policy.json'), JSON.stringify(policy));
    s = await start({
      GRPC_TLS_CERT_FILE: path.join(dir, 'tls.crt'),
      GRPC_TLS_KEY_FILE: path.join(dir, 'tls.key'),
      GRPC_TLS_CLIENT_CA_FILE: ca.caFile,
      GRPC_TLS_RELOAD_SECONDS: '1',
      GRPC_PERMISSIONS_FILE: path.join(dir, 'policy.json'),
      GRPC_HEALTH_PORT: '0',
    });
  });

  afterEach(() => {
    for (const c of clients) c.close();
    clients = [];
  });

  afterAll(async () => {
    await s?.server.shutdown(1_000);
  });

  describe('refused at the TLS handshake', () => {
    it('without a client certificate', async () => {
      expect(await code(client({ ca: ca.ca }).getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' }))).toMatchObject({ code: 'UNAVAILABLE' });
    });

    it('with a certificate from another CA', async () => {
      expect(await code(client(withCert('foreign')).getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' }))).toMatchObject({ code: 'UNAVAILABLE' });
    });

    it('with an expired certificate', async () => {
      expect(await code(client(withCert('expired')).getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' }))).toMatchObject({ code: 'UNAVAILABLE' });
    });

    it('in plaintext', async () => {
      expect(await code(client(false).getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' }))).toMatchObject({ code: 'UNAVAILABLE' });
    });
  });

  it('serves the right certificate (identity by URI SAN)', async () => {
    expect(await code(client(withCert('admin')).deleteEndpoint({ workspaceId: 'anyone', endpointId: 'ep_1' }))).toEqual({ code: 'OK', details: '' });
  });

  it('answers UNAUTHENTICATED to a valid certificate the policy does not list', async () => {
    const r = await code(client(withCert('stranger')).getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' }));
    expect(r.code).toBe('UNAUTHENTICATED');
    expect(r.details).toMatch(/client certificate/);
  });

  describe('a policy limited to some methods and workspaces (identity by CN)', () => {
    it('serves its methods for its workspaces (prefix and exact)', async () => {
      const c = client(withCert('acme'));
      expect(await code(c.getEndpoint({ workspaceId: 'acme-1', endpointId: 'ep_1' }))).toMatchObject({ code: 'OK' });
      expect(await code(c.listEndpoints({ workspaceId: 'ws_exact' }))).toMatchObject({ code: 'OK' });
    });

    it('denies another workspace, naming it', async () => {
      const r = await code(client(withCert('acme')).getEndpoint({ workspaceId: 'globex', endpointId: 'ep_1' }));
      expect(r).toEqual({ code: 'PERMISSION_DENIED', details: expect.stringContaining('for workspace globex') });
    });

    it('denies another method, naming it', async () => {
      const r = await code(client(withCert('acme')).deleteEndpoint({ workspaceId: 'acme-1', endpointId: 'ep_1' }));
      expect(r).toEqual({ code: 'PERMISSION_DENIED', details: expect.stringContaining(`may not call ${SERVICE}/DeleteEndpoint`) });
    });
  });

  describe('health for probes', () => {
    it('the plaintext health port answers grpc.health.v1 without any credentials', async () => {
      const health = new grpc.Client(`127.0.0.1:${s.healthPort}`, grpc.credentials.createInsecure());
      const res = await new Promise<Buffer>((resolve, reject) =>
        health.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (err, v) => (err ? reject(err) : resolve(v!))),
      );
      health.close();
      // HealthCheckResponse{status: SERVING (1)}
      expect([...res]).toEqual([8, 1]);
    });

    it('the health port serves nothing else', async () => {
      expect(await code(client(false, {}, s.healthPort).getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' }))).toMatchObject({ code: 'UNIMPLEMENTED' });
    });
  });

  it('grpcurl reflects and calls with a client certificate, and is refused without one', async () => {
    const tls = ['-cacert', ca.caFile, '-cert', certs.admin!.certFile, '-key', certs.admin!.keyFile, '-servername', 'localhost'];
    const listed = await grpcurl([...tls, `127.0.0.1:${s.port}`, 'list']);
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    expect(listed.stdout.split('\n')).toContain(SERVICE);
    const called = await grpcurl([...tls, '-d', '{"workspaceId":"ws_1","endpointId":"ep_1"}', `127.0.0.1:${s.port}`, `${SERVICE}/GetEndpoint`]);
    expect(called).toMatchObject({ code: 0, stderr: '' });
    const denied = await grpcurl(['-cacert', ca.caFile, '-cert', certs.acme!.certFile, '-key', certs.acme!.keyFile, '-servername', 'localhost', '-d', '{"workspaceId":"acme-1","endpointId":"ep_1"}', `127.0.0.1:${s.port}`, `${SERVICE}/DeleteEndpoint`]);
    expect(denied.code).toBe(64 + grpc.status.PERMISSION_DENIED);
    expect(denied.stderr).toContain('Code: PermissionDenied');
    const anonymous = await grpcurl(['-cacert', ca.caFile, '-servername', 'localhost', `127.0.0.1:${s.port}`, 'list']);
    expect(anonymous.code).not.toBe(0);
  });

  it('picks up a rotated server certificate without a restart', async () => {
    const peer = () =>
      new Promise<PeerCertificate>((resolve, reject) => {
        const sock = connect({ host: '127.0.0.1', port: s.port, ca: ca.ca, cert: certs.admin!.cert, key: certs.admin!.key, ALPNProtocols: ['h2'], servername: 'localhost' }, () => {
          const c = sock.getPeerCertificate();
          sock.end();
          resolve(c);
        });
        sock.on('error', reject);
      });
    const before = (await peer()).serialNumber;
    const next = ca.issue('server-next', { server: true });
    // Key first, then certificate: in between the pair does not match and the old one stays in use.
    copyFileSync(next.keyFile, path.join(dir, 'tls.key'));
    expect((await peer()).serialNumber).toBe(before);
    copyFileSync(next.certFile, path.join(dir, 'tls.crt'));
    const after = await eventually(async () => {
      const serial = (await peer()).serialNumber;
      return serial !== before ? serial : undefined;
    }, 15_000, 'the new server certificate');
    expect(after).not.toBe(before);
    // And calls keep working on the rotated certificate.
    expect(await code(client(withCert('admin')).getEndpoint({ workspaceId: 'ws_1', endpointId: 'ep_1' }))).toMatchObject({ code: 'OK' });
  });
});

describe('bearer tokens (TLS ended before the service)', () => {
  let s: Started;
  let clients: { close(): void }[] = [];
  const client = (bearerToken?: string) => {
    const c = createRegistryClient({ address: `127.0.0.1:${s.port}`, retry: NO_RETRY, timeoutMs: 5_000, ...(bearerToken ? { bearerToken } : {}) });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hookline-grpc-token-'));
    writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ callers: policy.callers.filter((c) => c.tokenSha256) }));
    s = await start({ GRPC_PERMISSIONS_FILE: path.join(dir, 'policy.json') });
  });
  afterEach(() => {
    for (const c of clients) c.close();
    clients = [];
  });
  afterAll(async () => {
    await s?.server.shutdown(1_000);
  });

  it('serves the right token', async () => {
    expect(await code(client(TOKEN).listEventTypes({}))).toEqual({ code: 'OK', details: '' });
    expect(await code(client(TOKEN).getEndpoint({ workspaceId: 'ws_token', endpointId: 'ep_1' }))).toMatchObject({ code: 'OK' });
  });

  it('answers UNAUTHENTICATED without a token and with an unknown one', async () => {
    expect(await code(client().listEventTypes({}))).toMatchObject({ code: 'UNAUTHENTICATED' });
    const r = await code(client(`${TOKEN}x`).listEventTypes({}));
    expect(r.code).toBe('UNAUTHENTICATED');
    expect(r.details).toMatch(/bearer token is not known/);
    expect(r.details).not.toContain(TOKEN);
  });

  it('denies a method and a workspace outside its policy', async () => {
    expect(await code(client(TOKEN).createEventType({ name: 'a.b' }))).toEqual({ code: 'PERMISSION_DENIED', details: expect.stringContaining(`${SERVICE}/CreateEventType`) });
    expect(await code(client(TOKEN).getEndpoint({ workspaceId: 'ws_other', endpointId: 'ep_1' }))).toEqual({ code: 'PERMISSION_DENIED', details: expect.stringContaining('workspace ws_other') });
  });
});

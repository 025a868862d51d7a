import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, EnvReader, readGrpcClientSecurity, readGrpcServerSecurity } from './config';
import { sha256Hex } from './permissions';

const dir = mkdtempSync(path.join(tmpdir(), 'hookline-config-'));
const file = (name: string, text = 'x') => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const problemsOf = (read: (r: EnvReader) => unknown, env: Record<string, string>): string[] => {
  const r = new EnvReader(env);
  read(r);
  try {
    r.done();
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
};

describe('readGrpcServerSecurity', () => {
  it('is plaintext and open with nothing set (local development)', () => {
    const r = new EnvReader({});
    expect(readGrpcServerSecurity(r)).toEqual({ tls: undefined, permissions: undefined, healthPort: undefined });
  });

  it('reads mutual TLS, the policy and the health port', () => {
    const policy = file('ok.json', JSON.stringify({ callers: [{ name: 'ops', certificate: 'spiffe://x/ops', methods: ['*'], workspaces: ['*'] }] }));
    const r = new EnvReader({ GRPC_TLS_CERT_FILE: file('c.pem'), GRPC_TLS_KEY_FILE: file('k.pem'), GRPC_TLS_CLIENT_CA_FILE: file('ca.pem'), GRPC_TLS_RELOAD_SECONDS: '5', GRPC_PERMISSIONS_FILE: policy, GRPC_HEALTH_PORT: '8086' });
    const s = readGrpcServerSecurity(r);
    r.done();
    expect(s.tls).toEqual({ certFile: path.join(dir, 'c.pem'), keyFile: path.join(dir, 'k.pem'), clientCaFile: path.join(dir, 'ca.pem'), reloadMs: 5_000 });
    expect(s.permissions?.callers.map((c) => c.name)).toEqual(['ops']);
    expect(s.healthPort).toBe(8086);
  });

  it('lists every mistake, with the file and caller at fault', () => {
    const policy = file('bad.json', JSON.stringify({ callers: [{ name: 'ops', certificate: 'spiffe://x/ops', methods: ['webhooks.nope.v1.X/*'], workspaces: ['*'] }] }));
    expect(problemsOf(readGrpcServerSecurity, { GRPC_TLS_KEY_FILE: file('k2.pem'), GRPC_TLS_CLIENT_CA_FILE: path.join(dir, 'missing.pem'), GRPC_PERMISSIONS_FILE: policy })).toEqual([
      `GRPC_TLS_CLIENT_CA_FILE=${path.join(dir, 'missing.pem')} cannot be read (ENOENT)`,
      'GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE must be set together',
      'GRPC_TLS_CLIENT_CA_FILE (mutual TLS) needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE',
      `GRPC_PERMISSIONS_FILE ${policy}: caller "ops": methods entry "webhooks.nope.v1.X/*" names no known service webhooks.nope.v1.X`,
      'GRPC_PERMISSIONS_FILE names callers by certificate only, but without GRPC_TLS_CLIENT_CA_FILE no client certificate is ever verified: set it, or give those callers a tokenSha256',
    ]);
  });
});

describe('readGrpcClientSecurity', () => {
  it('reads TLS files and a token from a file, without echoing the token in problems', () => {
    const r = new EnvReader({ REGISTRY_TLS_CA_FILE: file('rca.pem'), REGISTRY_TOKEN_FILE: file('token', 'tok-123\n') });
    const s = readGrpcClientSecurity(r, 'REGISTRY');
    r.done();
    expect(s).toEqual({ tls: { caFile: path.join(dir, 'rca.pem') }, token: 'tok-123', reloadMs: 60_000 });
    expect(sha256Hex(s.token!)).toHaveLength(64);
    const p = problemsOf((x) => readGrpcClientSecurity(x, 'REGISTRY'), { REGISTRY_TOKEN: 'inline-secret', REGISTRY_TOKEN_FILE: file('token2', 't'), REGISTRY_TLS: 'false', REGISTRY_TLS_SERVER_NAME: 'reg' });
    expect(p).toEqual(['REGISTRY_TLS=false contradicts the REGISTRY_TLS_* settings', 'set REGISTRY_TOKEN or REGISTRY_TOKEN_FILE, not both']);
    expect(p.join()).not.toContain('inline-secret');
  });
});

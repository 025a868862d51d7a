// A throwaway CA and a leaf certificate for localhost/127.0.0.1/::1, made with openssl at test
// time (never committed). The dispatcher trusts the CA through NODE_EXTRA_CA_CERTS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestPki {
  dir: string;
  caFile: string;
  ca: string;
  cert: string;
  key: string;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'hookline-pki-'));
  const f = (n: string) => path.join(dir, n);
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Hookline Test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', '/CN=localhost');
  writeFileSync(f('leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n');
  run('x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('leaf.pem'), '-days', '2', '-extfile', f('leaf.ext'));
  return { dir, caFile: f('ca.pem'), ca: readFileSync(f('ca.pem'), 'utf8'), cert: readFileSync(f('leaf.pem'), 'utf8'), key: readFileSync(f('leaf.key'), 'utf8') };
}

/** A certificate and key on disk (PEM), with their contents. */
export interface IssuedCert {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface TestCa {
  name: string;
  caFile: string;
  ca: string;
  /**
   * Issues a leaf: `uri` becomes a URI SAN (the caller identity services match), `cn` the
   * subject; `server` adds localhost/127.0.0.1 SANs and serverAuth; `expired` dates it in 2020.
   */
  issue(name: string, opts?: { cn?: string; uri?: string; server?: boolean; client?: boolean; expired?: boolean }): IssuedCert;
}

/**
 * Throwaway certificate authorities for mTLS tests (openssl at test time, EC P-256 keys: fast to
 * make; never committed). `openssl ca` rather than `x509 -req`, because only it can back-date a
 * certificate (the expired-client case).
 */
export function makeTestCa(name: string, dir = mkdtempSync(path.join(tmpdir(), `hookline-ca-${name}-`))): TestCa {
  const f = (n: string) => path.join(dir, n);
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', `/CN=Hookline Test CA ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  writeFileSync(f('index.txt'), '');
  writeFileSync(f('serial'), '1000\n');
  writeFileSync(
    f('ca.cnf'),
    [
      '[ca]',
      'default_ca = test',
      '[test]',
      `database = ${f('index.txt')}`,
      `new_certs_dir = ${dir}`,
      `serial = ${f('serial')}`,
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      'email_in_dn = no',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  return {
    name,
    caFile: f('ca.pem'),
    ca: readFileSync(f('ca.pem'), 'utf8'),
    issue(leaf, opts = {}) {
      const server = opts.server ?? false;
      const client = opts.client ?? !server;
      run('req', ...ec, '-keyout', f(`${leaf}.key`), '-out', f(`${leaf}.csr`), '-subj', `/CN=${opts.cn ?? leaf}`);
      const sans = [...(server ? ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'] : []), ...(opts.uri ? [`URI:${opts.uri}`] : [])];
      const usage = [...(server ? ['serverAuth'] : []), ...(client ? ['clientAuth'] : [])];
      writeFileSync(f(`${leaf}.ext`), `${sans.length ? `subjectAltName=${sans.join(',')}\n` : ''}extendedKeyUsage=${usage.join(',')}\nbasicConstraints=CA:FALSE\n`);
      const dates = opts.expired ? ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'] : ['-days', '2'];
      run('ca', '-batch', '-notext', '-config', f('ca.cnf'), '-cert', f('ca.pem'), '-keyfile', f('ca.key'), '-in', f(`${leaf}.csr`), '-out', f(`${leaf}.pem`), '-extfile', f(`${leaf}.ext`), ...dates);
      return { certFile: f(`${leaf}.pem`), keyFile: f(`${leaf}.key`), cert: readFileSync(f(`${leaf}.pem`), 'utf8'), key: readFileSync(f(`${leaf}.key`), 'utf8') };
    },
  };
}

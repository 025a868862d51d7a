import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, EnvReader } from '@hookline/service-kit';
import { explainAccessError, readKafkaSettings } from './index';

const read = (env: Record<string, string>) => {
  const r = new EnvReader(env);
  const s = readKafkaSettings(r, 'test');
  r.done();
  return s;
};
const problems = (env: Record<string, string>): string[] => {
  try {
    read(env);
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
};

describe('readKafkaSettings: TLS and SASL', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hookline-kafka-settings-'));
  const passwordFile = path.join(dir, 'password');
  writeFileSync(passwordFile, 's3cret-from-file\n');
  writeFileSync(path.join(dir, 'ca.pem'), 'pem');

  it('keeps the local plaintext path when nothing is set', () => {
    expect(read({})).toMatchObject({ brokers: ['127.0.0.1:19092'], tls: undefined, sasl: undefined });
  });

  it('reads SASL_SSL with the password from a file (trailing newline dropped)', () => {
    const s = read({ KAFKA_TLS_CA_FILE: path.join(dir, 'ca.pem'), KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'hookline', KAFKA_SASL_PASSWORD_FILE: passwordFile });
    expect(s.tls).toEqual({ caFile: path.join(dir, 'ca.pem') });
    expect(s.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'hookline', password: 's3cret-from-file' });
  });

  it('refuses SASL without TLS unless allowed, and names the keys, never the password', () => {
    const p = problems({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'hunter2' });
    expect(p).toEqual([expect.stringContaining('KAFKA_SASL_MECHANISM without TLS sends credentials in the clear')]);
    expect(p.join()).not.toContain('hunter2');
    expect(problems({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p', KAFKA_SASL_ALLOW_PLAINTEXT: 'true' })).toEqual([]);
  });

  it('lists every other mistake', () => {
    expect(problems({ KAFKA_TLS: 'true', KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_SASL_PASSWORD: 'p', KAFKA_SASL_PASSWORD_FILE: passwordFile, KAFKA_TLS_CERT_FILE: path.join(dir, 'missing.pem') })).toEqual([
      `KAFKA_TLS_CERT_FILE=${path.join(dir, 'missing.pem')} cannot be read (ENOENT)`,
      'KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE must be set together',
      'set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both',
      'KAFKA_SASL_MECHANISM="gssapi" must be one of plain, scram-sha-256, scram-sha-512',
      'KAFKA_SASL_MECHANISM is set: KAFKA_SASL_USERNAME (or KAFKA_SASL_USERNAME_FILE) is required',
      'KAFKA_SASL_MECHANISM is set: KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) is required',
    ]);
    expect(problems({ KAFKA_SASL_USERNAME: 'u' })).toEqual(['KAFKA_SASL_USERNAME/PASSWORD are set but KAFKA_SASL_MECHANISM is not (plain, scram-sha-256 or scram-sha-512)']);
  });
});

describe('explainAccessError', () => {
  it('turns refused credentials and TLS failures into one line naming the settings', () => {
    const sasl = Object.assign(new Error('SASL SCRAM SHA256 authentication failed: invalid credentials'), { name: 'KafkaJSSASLAuthenticationError' });
    expect(explainAccessError(Object.assign(new Error('wrapped'), { originalError: sasl }))?.message).toBe(
      'Kafka refused the SASL credentials (SASL SCRAM SHA256 authentication failed: invalid credentials): check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE)',
    );
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    expect(explainAccessError(Object.assign(new Error('Connection error'), { name: 'KafkaJSConnectionError', cause: tls }))?.message).toMatch(/^Kafka TLS handshake failed \(SELF_SIGNED_CERT_IN_CHAIN\)/);
    expect(explainAccessError(new Error('ECONNREFUSED'))).toBeUndefined();
  });
});

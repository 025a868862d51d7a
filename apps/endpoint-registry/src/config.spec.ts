import { randomBytes } from 'node:crypto';
import { loadConfig } from './config';

const key = () => randomBytes(32).toString('base64');

describe('loadConfig', () => {
  it('reads the key ring; the first key is active by default; no allow-list by default', () => {
    const c = loadConfig({ SECRET_ENCRYPTION_KEYS: `k1:${key()},k2:${key()}` });
    expect([...c.secretKeys.keys()]).toEqual(['k1', 'k2']);
    expect(c.activeSecretKeyId).toBe('k1');
    expect(c.targetAllowList).toEqual([]);
  });

  it('lists every bad key setting at once, without echoing key material', () => {
    const short = randomBytes(16).toString('base64');
    let message = '';
    try {
      loadConfig({ SECRET_ENCRYPTION_KEYS: `k1:${short},k2:${key()},k2:${key()}`, SECRET_ENCRYPTION_ACTIVE_KEY: 'k9', TARGET_ALLOWLIST: '10.0.0.0/40' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/"k1" must be <key-id>:<base64 of 32 bytes>/);
    expect(message).toMatch(/key id "k2" twice/);
    expect(message).toMatch(/SECRET_ENCRYPTION_ACTIVE_KEY=k9/);
    expect(message).toMatch(/TARGET_ALLOWLIST: 10\.0\.0\.0\/40/);
    expect(message).not.toContain(short);
  });

  it('requires SECRET_ENCRYPTION_KEYS', () => {
    expect(() => loadConfig({})).toThrow(/SECRET_ENCRYPTION_KEYS is required/);
  });
});

import { loadConfig } from './config';

const key = `k1:${Buffer.alloc(32, 7).toString('base64')}`;

describe('portal loadConfig', () => {
  it('reads defaults and the signing keys in order', () => {
    const c = loadConfig({ PORTAL_SIGNING_KEYS: `k2:${Buffer.alloc(32, 1).toString('base64')},${key}` });
    expect(c.signingKeys.map((k) => k.id)).toEqual(['k2', 'k1']);
    expect(c).toMatchObject({ httpPort: 8080, grpcPort: 50054, frameAncestors: ["'none'"], linkTtlSeconds: 300, theme: 'auto' });
  });

  it('lists every problem at once, without echoing key material', () => {
    let message = '';
    try {
      loadConfig({ PORTAL_SIGNING_KEYS: 'k1:c2hvcnQ=', PORTAL_BRAND_COLOR: 'red', PORTAL_FRAME_ANCESTORS: "'none',https://a.example.com", PORTAL_PUBLIC_URL: 'http://portal.example.com', PORTAL_LOGO_URL: 'javascript:alert(1)' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/PORTAL_SIGNING_KEYS/);
    expect(message).not.toContain('c2hvcnQ=');
    expect(message).toMatch(/PORTAL_BRAND_COLOR/);
    expect(message).toMatch(/'none' cannot be combined/);
    expect(message).toMatch(/PORTAL_PUBLIC_URL must be https/);
    expect(message).toMatch(/PORTAL_LOGO_URL/);
  });

  it('requires a signing key', () => {
    expect(() => loadConfig({})).toThrow(/PORTAL_SIGNING_KEYS is required/);
  });
});

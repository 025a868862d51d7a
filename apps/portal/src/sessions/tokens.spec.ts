import { randomBytes } from 'node:crypto';
import { TokenSigner } from './tokens';

const k1 = { id: 'k1', key: randomBytes(32) };
const k2 = { id: 'k2', key: randomBytes(32) };

describe('TokenSigner', () => {
  let now = 1_000_000;
  const clock = () => now;

  it('issues links that verify until they expire, with the claims intact', () => {
    const s = new TokenSigner([k1], clock);
    const { token, claims } = s.issueLink('ws_1', true, 600, 300);
    expect(token.split('.')).toHaveLength(3);
    expect(s.verifyLink(token)).toEqual({ ok: true, claims, kid: 'k1' });
    now += 299_999;
    expect(s.verifyLink(token).ok).toBe(true);
    now += 1;
    expect(s.verifyLink(token)).toEqual({ ok: false, reason: 'expired' });
  });

  it('verifies with every configured key and signs with the first (rotation)', () => {
    const old = new TokenSigner([k1], clock);
    const rotated = new TokenSigner([k2, k1], clock);
    const before = old.issueLink('ws', false, 60, 60).token;
    expect(rotated.verifyLink(before).ok).toBe(true);
    const after = rotated.issueLink('ws', false, 60, 60).token;
    expect(after.startsWith('k2.')).toBe(true);
    expect(old.verifyLink(after)).toEqual({ ok: false, reason: 'unknown-key' });
    expect(new TokenSigner([k2], clock).verifyLink(before)).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it('refuses tampered, wrong-kind and malformed tokens', () => {
    const s = new TokenSigner([k1], clock);
    const { token } = s.issueLink('ws_a', false, 60, 60);
    const [kid, payload, mac] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const tampered = `${kid}.${Buffer.from(JSON.stringify({ ...claims, ws: 'ws_b' })).toString('base64url')}.${mac}`;
    expect(s.verifyLink(tampered)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(s.verifySession(token)).toEqual({ ok: false, reason: 'wrong-kind' });
    for (const bad of ['', 'a.b', 'a.b.c.d', 'k1.!!.x', `k1.${payload}.${mac}x`, 'x'.repeat(3000)]) expect(s.verifyLink(bad).ok).toBe(false);
  });

  it('turns a link into a session of the granted lifetime, with a CSRF token bound to it', () => {
    const s = new TokenSigner([k1], clock);
    const link = s.issueLink('ws', false, 120, 60);
    const { cookie, claims } = s.issueSession(link.claims);
    expect(claims).toMatchObject({ t: 'session', ws: 'ws', ro: false, exp: now + 120_000 });
    const v = s.verifySession(cookie);
    expect(v.ok).toBe(true);
    const csrf = s.csrfToken(claims, 'k1');
    expect(s.checkCsrf(claims, 'k1', csrf)).toBe(true);
    expect(s.checkCsrf(claims, 'k1', undefined)).toBe(false);
    expect(s.checkCsrf(claims, 'k1', csrf.slice(1))).toBe(false);
    const other = s.issueSession(link.claims).claims;
    expect(s.checkCsrf(other, 'k1', csrf)).toBe(false);
  });
});

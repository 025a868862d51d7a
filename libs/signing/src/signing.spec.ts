import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  generateSecret,
  isWellFormedSecret,
  signature256,
  standardSignature,
  standardSignatureHeader,
  verifySignature256,
  verifyStandard,
} from './index';

interface Vector {
  secret: string;
  body_base64: string;
  signature_256: string;
  webhook_id?: string;
  webhook_timestamp?: number;
  webhook_signature?: string;
}
const golden = JSON.parse(readFileSync(path.join(__dirname, '..', 'testdata', 'vectors.json'), 'utf8')) as {
  vectors: Vector[];
  standard_webhooks_spec_vector: { secret: string; webhook_id: string; webhook_timestamp: number; body: string; webhook_signature: string };
};

describe('signature256 (X-Signature-256)', () => {
  it.each(golden.vectors)('matches the openssl vector for $secret', (v) => {
    const body = Buffer.from(v.body_base64, 'base64');
    expect(signature256(body, v.secret)).toBe(v.signature_256);
    expect(verifySignature256(body, v.secret, v.signature_256)).toBe(true);
  });

  it('signs strings and bytes alike', () => {
    expect(signature256('{"a":1}', 'whsec_x')).toBe(signature256(Buffer.from('{"a":1}'), 'whsec_x'));
  });

  it('rejects a changed body, a wrong secret, a missing or malformed header', () => {
    const v = golden.vectors[0]!;
    const body = Buffer.from(v.body_base64, 'base64');
    expect(verifySignature256(Buffer.concat([body, Buffer.from(' ')]), v.secret, v.signature_256)).toBe(false);
    expect(verifySignature256(body, v.secret + 'x', v.signature_256)).toBe(false);
    expect(verifySignature256(body, v.secret, undefined)).toBe(false);
    expect(verifySignature256(body, v.secret, v.signature_256.slice(0, -1))).toBe(false);
    expect(verifySignature256(body, v.secret, v.signature_256.replace('sha256=', ''))).toBe(false);
  });

  it('accepts any of several secrets (rotation grace period)', () => {
    const v = golden.vectors[0]!;
    const body = Buffer.from(v.body_base64, 'base64');
    expect(verifySignature256(body, ['whsec_new', v.secret], v.signature_256)).toBe(true);
    expect(verifySignature256(body, ['whsec_new', 'whsec_other'], v.signature_256)).toBe(false);
  });
});

describe('Standard Webhooks', () => {
  it('reproduces the specification example', () => {
    const s = golden.standard_webhooks_spec_vector;
    expect(standardSignature({ id: s.webhook_id, timestamp: s.webhook_timestamp, body: s.body }, s.secret)).toBe(s.webhook_signature);
  });

  it.each(golden.vectors.filter((v) => v.webhook_signature))('matches the openssl vector for $webhook_id', (v) => {
    const input = { id: v.webhook_id!, timestamp: v.webhook_timestamp!, body: Buffer.from(v.body_base64, 'base64') };
    expect(standardSignature(input, v.secret)).toBe(v.webhook_signature);
  });

  it('verifies within tolerance in both directions and not outside it', () => {
    const secret = generateSecret();
    const ts = 1_800_000_000;
    const body = '{"x":1}';
    const headers = { 'webhook-id': 'evt_a', 'webhook-timestamp': String(ts), 'webhook-signature': standardSignatureHeader({ id: 'evt_a', timestamp: ts, body }, [secret]) };
    expect(verifyStandard(body, secret, headers, ts + 300)).toEqual({ ok: true });
    expect(verifyStandard(body, secret, headers, ts - 300)).toEqual({ ok: true });
    expect(verifyStandard(body, secret, headers, ts + 301)).toEqual({ ok: false, reason: 'too-old' });
    expect(verifyStandard(body, secret, headers, ts - 301)).toEqual({ ok: false, reason: 'too-new' });
    expect(verifyStandard(body + ' ', secret, headers, ts)).toEqual({ ok: false, reason: 'no-match' });
    expect(verifyStandard(body, secret, { ...headers, 'webhook-timestamp': '12a' }, ts)).toEqual({ ok: false, reason: 'bad-timestamp' });
    expect(verifyStandard(body, secret, { 'webhook-id': 'evt_a' }, ts)).toEqual({ ok: false, reason: 'missing-headers' });
  });

  it('lists one signature per active secret, and each verifies', () => {
    const [a, b] = [generateSecret(), generateSecret()];
    const input = { id: 'evt_b', timestamp: 1_800_000_000, body: '{}' };
    const header = standardSignatureHeader(input, [a, b]);
    expect(header.split(' ')).toHaveLength(2);
    const h = { 'webhook-id': input.id, 'webhook-timestamp': String(input.timestamp), 'webhook-signature': header };
    expect(verifyStandard(input.body, a, h, input.timestamp).ok).toBe(true);
    expect(verifyStandard(input.body, b, h, input.timestamp).ok).toBe(true);
    expect(verifyStandard(input.body, generateSecret(), h, input.timestamp).ok).toBe(false);
  });
});

describe('generateSecret', () => {
  it('makes whsec_ + base64 of 32 random bytes, different every time', () => {
    const a = generateSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(6), 'base64')).toHaveLength(32);
    expect(isWellFormedSecret(a)).toBe(true);
    expect(generateSecret()).not.toBe(a);
    expect(isWellFormedSecret('whsec_short')).toBe(false);
  });
});

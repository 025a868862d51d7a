import { readFileSync } from 'node:fs';
import path from 'node:path';
import { generateSecret, signature256, standardSignatureHeader, verify } from './index';

const golden = JSON.parse(readFileSync(path.join(__dirname, '..', 'testdata', 'vectors.json'), 'utf8')) as {
  vectors: { secret: string; body_base64: string; signature_256: string }[];
  standard_webhooks_spec_vector: { secret: string; webhook_id: string; webhook_timestamp: number; body: string; webhook_signature: string };
};

describe('verify (either scheme)', () => {
  const spec = golden.standard_webhooks_spec_vector;
  const specHeaders = { 'webhook-id': spec.webhook_id, 'webhook-timestamp': String(spec.webhook_timestamp), 'webhook-signature': spec.webhook_signature };
  const at = (seconds: number) => new Date(seconds * 1000);

  it('accepts the golden X-Signature-256 vector, in any header case', () => {
    const v = golden.vectors[0]!;
    const body = Buffer.from(v.body_base64, 'base64');
    expect(verify(body, v.secret, { 'x-signature-256': v.signature_256 })).toEqual({ ok: true, scheme: 'signature-256' });
    expect(verify(body, v.secret, { 'X-Signature-256': v.signature_256 })).toEqual({ ok: true, scheme: 'signature-256' });
    expect(verify(body, v.secret, new Headers({ 'X-Signature-256': v.signature_256 }))).toEqual({ ok: true, scheme: 'signature-256' });
    expect(verify(Buffer.concat([body, Buffer.from('x')]), v.secret, { 'x-signature-256': v.signature_256 })).toEqual({ ok: false, scheme: 'signature-256', reason: 'no-match' });
  });

  it('accepts the Standard Webhooks specification vector within tolerance, both directions', () => {
    expect(verify(spec.body, spec.secret, specHeaders, { now: at(spec.webhook_timestamp) })).toEqual({ ok: true, scheme: 'standard-webhooks' });
    expect(verify(spec.body, spec.secret, specHeaders, { now: at(spec.webhook_timestamp + 300) }).ok).toBe(true);
    expect(verify(spec.body, spec.secret, specHeaders, { now: at(spec.webhook_timestamp - 300) }).ok).toBe(true);
    expect(verify(spec.body, spec.secret, specHeaders, { now: at(spec.webhook_timestamp + 301) })).toEqual({ ok: false, scheme: 'standard-webhooks', reason: 'too-old' });
    expect(verify(spec.body, spec.secret, specHeaders, { now: at(spec.webhook_timestamp - 301) })).toEqual({ ok: false, scheme: 'standard-webhooks', reason: 'too-new' });
    expect(verify(spec.body, spec.secret, specHeaders, { now: at(spec.webhook_timestamp + 3600), toleranceSeconds: 3600 }).ok).toBe(true);
  });

  it('defaults the clock to now: a fresh signature passes, one from an hour ago does not', () => {
    const secret = generateSecret();
    const body = '{"a":1}';
    const sign = (ts: number) => ({ 'webhook-id': 'evt_1', 'webhook-timestamp': String(ts), 'webhook-signature': standardSignatureHeader({ id: 'evt_1', timestamp: ts, body }, [secret]) });
    const now = Math.floor(Date.now() / 1000);
    expect(verify(body, secret, sign(now)).ok).toBe(true);
    expect(verify(body, secret, sign(now - 3600))).toMatchObject({ ok: false, reason: 'too-old' });
  });

  it('does not fall back to X-Signature-256 when Standard Webhooks headers fail (no replay by downgrade)', () => {
    const secret = generateSecret();
    const body = '{"a":1}';
    const old = 1_700_000_000;
    const headers = {
      'webhook-id': 'evt_1',
      'webhook-timestamp': String(old),
      'webhook-signature': standardSignatureHeader({ id: 'evt_1', timestamp: old, body }, [secret]),
      'x-signature-256': signature256(body, secret),
    };
    expect(verify(body, secret, headers, { now: at(old + 10_000) })).toEqual({ ok: false, scheme: 'standard-webhooks', reason: 'too-old' });
    // A receiver that insists on Standard Webhooks refuses a request stripped down to X-Signature-256.
    expect(verify(body, secret, { 'x-signature-256': headers['x-signature-256'] }, { schemes: ['standard-webhooks'] })).toEqual({ ok: false, reason: 'missing-signature' });
    expect(verify(body, secret, { 'x-signature-256': headers['x-signature-256'] }).ok).toBe(true);
  });

  it('accepts any of several secrets (rotation) and reports missing pieces', () => {
    const [a, b] = [generateSecret(), generateSecret()];
    const body = Buffer.from('{}');
    expect(verify(body, [b, a], { 'x-signature-256': signature256(body, a) }).ok).toBe(true);
    expect(verify(body, [b], { 'x-signature-256': signature256(body, a) }).ok).toBe(false);
    expect(verify(body, a, {})).toEqual({ ok: false, reason: 'missing-signature' });
    expect(verify(body, a, { 'webhook-signature': 'v1,abc' })).toEqual({ ok: false, scheme: 'standard-webhooks', reason: 'missing-headers' });
    expect(() => verify(body, [], { 'x-signature-256': 'sha256=00' })).toThrow(TypeError);
  });

  it('joins repeated webhook-signature values (Node keeps arrays for some headers)', () => {
    const [a, b] = [generateSecret(), generateSecret()];
    const ts = 1_800_000_000;
    const body = '{}';
    const sigA = standardSignatureHeader({ id: 'e', timestamp: ts, body }, [a]);
    const sigB = standardSignatureHeader({ id: 'e', timestamp: ts, body }, [b]);
    expect(verify(body, b, { 'webhook-id': 'e', 'webhook-timestamp': String(ts), 'webhook-signature': [sigA, sigB] }, { now: at(ts) }).ok).toBe(true);
  });
});

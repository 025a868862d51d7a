// One entry point for receivers: verify(rawBody, secret(s), headers) accepts a Hookline delivery
// signed either way, X-Signature-256 or Standard Webhooks, in constant time per candidate.
import { DEFAULT_TOLERANCE_SECONDS, SIGNATURE_256_HEADER, verifySignature256, verifyStandard, type Body } from './index';

export type SignatureScheme = 'standard-webhooks' | 'signature-256';

export type VerifyFailure =
  /** Neither `webhook-signature` nor `x-signature-256` is present (or the allowed scheme's header is missing). */
  | 'missing-signature'
  /** `webhook-id` or `webhook-timestamp` is missing next to `webhook-signature`. */
  | 'missing-headers'
  /** `webhook-timestamp` is not whole seconds. */
  | 'bad-timestamp'
  /** `webhook-timestamp` is more than the tolerance in the past (a replay, or a clock far behind). */
  | 'too-old'
  /** `webhook-timestamp` is more than the tolerance in the future. */
  | 'too-new'
  /** No signature matches any secret: wrong secret, or the body was changed (parsed and re-serialised?). */
  | 'no-match';

export type VerifyResult = { ok: true; scheme: SignatureScheme } | { ok: false; scheme?: SignatureScheme; reason: VerifyFailure };

export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, both directions. @default 300 (5 minutes) */
  toleranceSeconds?: number;
  /** The clock, for tests. @default new Date() */
  now?: Date;
  /**
   * Schemes to accept. @default both. When the Standard Webhooks headers are present they are
   * checked and X-Signature-256 is not looked at (no fall back to the scheme without replay
   * protection). X-Signature-256 signs only the body, so a receiver that must refuse replays
   * should pass `['standard-webhooks']` and turn the endpoint's standard_webhooks setting on:
   * otherwise an attacker could strip the webhook-* headers from a captured request.
   */
  schemes?: readonly SignatureScheme[];
}

/** Header values as Node's `req.headers`, a fetch `Headers`, or a plain object in any case. */
export type HeaderSource = { get(name: string): string | null } | Record<string, string | readonly string[] | undefined>;

function headerGetter(headers: HeaderSource): (name: string) => string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const h = headers as { get(name: string): string | null };
    return (name) => h.get(name) ?? undefined;
  }
  const lower = new Map<string, string>();
  for (const [k, v] of Object.entries(headers as Record<string, string | readonly string[] | undefined>)) {
    if (v === undefined) continue;
    // Repeated headers: Node joins most with ", ", keeps arrays for a few; signatures are space separated.
    lower.set(k.toLowerCase(), typeof v === 'string' ? v : v.join(' '));
  }
  return (name) => lower.get(name);
}

/**
 * Verifies a delivery. `rawBody` must be the exact bytes received: a body parsed to JSON and
 * serialised again will not verify. Pass every secret still valid during a rotation.
 */
export function verify(rawBody: Body, secrets: string | readonly string[], headers: HeaderSource, options: VerifyOptions = {}): VerifyResult {
  const get = headerGetter(headers);
  const schemes = options.schemes ?? ['standard-webhooks', 'signature-256'];
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  if (list.length === 0) throw new TypeError('verify: at least one secret is required');

  const standardSig = get('webhook-signature');
  if (standardSig !== undefined && schemes.includes('standard-webhooks')) {
    const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000);
    const r = verifyStandard(
      rawBody,
      list,
      { 'webhook-id': get('webhook-id'), 'webhook-timestamp': get('webhook-timestamp'), 'webhook-signature': standardSig },
      nowSeconds,
      options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS,
    );
    return r.ok ? { ok: true, scheme: 'standard-webhooks' } : { ok: false, scheme: 'standard-webhooks', reason: r.reason };
  }
  const sig256 = get(SIGNATURE_256_HEADER);
  if (sig256 !== undefined && schemes.includes('signature-256')) {
    return verifySignature256(rawBody, list, sig256) ? { ok: true, scheme: 'signature-256' } : { ok: false, scheme: 'signature-256', reason: 'no-match' };
  }
  return { ok: false, reason: 'missing-signature' };
}

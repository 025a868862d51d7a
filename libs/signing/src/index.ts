// Pure signing and verification for Hookline deliveries. No I/O, no clock reads: callers pass
// the timestamp, so golden vectors pin every byte (testdata/vectors.json).
import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';
/** Header carrying `sha256=<hex>`: HMAC-SHA256 of the raw body keyed with the whole secret string. */
export const SIGNATURE_256_HEADER = 'x-signature-256';
/** Standard Webhooks tolerance for `webhook-timestamp`, both directions: 5 minutes. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export type Body = string | Uint8Array;

/** A new endpoint secret: `whsec_` + base64 of 32 random bytes (256 bits). */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** True when the string has the shape generateSecret() produces. */
export function isWellFormedSecret(secret: string): boolean {
  if (!secret.startsWith(SECRET_PREFIX)) return false;
  const raw = secret.slice(SECRET_PREFIX.length);
  return /^[A-Za-z0-9+/]+={0,2}$/.test(raw) && Buffer.from(raw, 'base64').length >= 24;
}

/**
 * `X-Signature-256` value for one secret. The key is the secret's UTF-8 bytes, prefix included,
 * exactly as the receiver snippet in the product guide computes it.
 */
export function signature256(body: Body, secret: string): string {
  // The string itself is the key (createHmac takes a string key as its UTF-8 bytes): on Node 24 a
  // Buffer key costs a slow KeyObject check per call, ~29,000 HMACs/s of 1 KiB against ~210,000.
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/** Constant-time check of an `X-Signature-256` header against any of the given secrets. */
export function verifySignature256(body: Body, secrets: string | readonly string[], header: string | undefined): boolean {
  if (typeof header !== 'string') return false;
  const given = Buffer.from(header, 'utf8');
  let ok = false;
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
    const expected = Buffer.from(signature256(body, secret), 'utf8');
    // Compare every secret (no early exit) so timing says nothing about which matched.
    if (expected.length === given.length && timingSafeEqual(expected, given)) ok = true;
  }
  return ok;
}

/** Standard Webhooks keys made so far, by secret (bounded: cleared when full). */
const standardKeys = new Map<string, KeyObject>();
const STANDARD_KEYS_MAX = 10_000;

/**
 * The Standard Webhooks key: base64-decoded bytes after `whsec_`, as a KeyObject made once per
 * secret (on Node 24 createHmac with a Buffer key is ~7× slower than with a KeyObject).
 */
function standardKey(secret: string): KeyObject {
  let key = standardKeys.get(secret);
  if (!key) {
    const raw = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
    if (standardKeys.size >= STANDARD_KEYS_MAX) standardKeys.clear();
    standardKeys.set(secret, (key = createSecretKey(Buffer.from(raw, 'base64'))));
  }
  return key;
}

export interface StandardSignInput {
  /** `webhook-id`: the event id, stable across retries. */
  id: string;
  /** `webhook-timestamp`: whole seconds since the epoch. */
  timestamp: number;
  body: Body;
}

/** One `v1,<base64>` signature: HMAC-SHA256 over `${id}.${timestamp}.${body}`. */
export function standardSignature(input: StandardSignInput, secret: string): string {
  const mac = createHmac('sha256', standardKey(secret));
  mac.update(`${input.id}.${input.timestamp}.`);
  mac.update(input.body);
  return 'v1,' + mac.digest('base64');
}

/** `webhook-signature` value: one signature per active secret, space separated. */
export function standardSignatureHeader(input: StandardSignInput, secrets: readonly string[]): string {
  return secrets.map((s) => standardSignature(input, s)).join(' ');
}

export type StandardVerifyResult = { ok: true } | { ok: false; reason: 'missing-headers' | 'bad-timestamp' | 'too-old' | 'too-new' | 'no-match' };

export interface StandardHeaders {
  'webhook-id'?: string;
  'webhook-timestamp'?: string;
  'webhook-signature'?: string;
}

/**
 * Verifies Standard Webhooks headers: the timestamp must be within `toleranceSeconds` of `nowSeconds`
 * in either direction (replay protection), and one listed `v1` signature must match one secret.
 */
export function verifyStandard(
  body: Body,
  secrets: string | readonly string[],
  headers: StandardHeaders,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): StandardVerifyResult {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (!id || !ts || !sigs) return { ok: false, reason: 'missing-headers' };
  if (!/^\d{1,12}$/.test(ts)) return { ok: false, reason: 'bad-timestamp' };
  const timestamp = Number(ts);
  if (timestamp < nowSeconds - toleranceSeconds) return { ok: false, reason: 'too-old' };
  if (timestamp > nowSeconds + toleranceSeconds) return { ok: false, reason: 'too-new' };
  const given = sigs
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s, 'utf8'));
  let ok = false;
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
    const expected = Buffer.from(standardSignature({ id, timestamp, body }, secret), 'utf8');
    for (const g of given) if (g.length === expected.length && timingSafeEqual(g, expected)) ok = true;
  }
  return ok ? { ok: true } : { ok: false, reason: 'no-match' };
}

// verify(rawBody, secrets, headers): either scheme, one call (receivers start here).
export { verify, type HeaderSource, type SignatureScheme, type VerifyFailure, type VerifyOptions, type VerifyResult } from './verify';

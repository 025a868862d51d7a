// Link tokens and session cookies: HMAC-SHA256 over a small JSON claim set, named by key id so
// keys rotate (the first key signs, every configured key verifies). Pure: the clock is injected.
//   link token  <kid>.<base64url claims>.<base64url mac>   claims {t:'link', jti, ws, ro, ttl, exp}
//   session     <kid>.<base64url claims>.<base64url mac>   claims {t:'session', sid, ws, ro, exp}
// The type tag is inside the MAC, so a link token can never pass as a session cookie or back.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SigningKey } from '../config';

export interface LinkClaims {
  t: 'link';
  /** Single-use id: recorded in the database when the link is opened. */
  jti: string;
  ws: string;
  ro: boolean;
  /** Session lifetime in seconds, granted when the link is opened. */
  ttl: number;
  /** Link expiry, ms since the epoch. */
  exp: number;
}

export interface SessionClaims {
  t: 'session';
  sid: string;
  ws: string;
  ro: boolean;
  exp: number;
}

export type Refusal = 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' | 'wrong-kind';
export type Verified<T> = { ok: true; claims: T; kid: string } | { ok: false; reason: Refusal };

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64url');
const mac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();

export class TokenSigner {
  constructor(
    private readonly keys: readonly SigningKey[],
    private readonly now: () => number = Date.now,
  ) {
    if (keys.length === 0) throw new Error('at least one signing key is needed');
  }

  private sign(claims: object): string {
    const k = this.keys[0]!;
    const body = `${k.id}.${b64(JSON.stringify(claims))}`;
    return `${body}.${b64(mac(k.key, body))}`;
  }

  private verify<T extends { t: string; exp: number }>(token: string, kind: T['t']): Verified<T> {
    if (typeof token !== 'string' || token.length > 2048) return { ok: false, reason: 'malformed' };
    const parts = token.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return { ok: false, reason: 'malformed' };
    const [kid, payload, sig] = parts as [string, string, string];
    const key = this.keys.find((k) => k.id === kid);
    if (!key) return { ok: false, reason: 'unknown-key' };
    const want = mac(key.key, `${kid}.${payload}`);
    const got = Buffer.from(sig, 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, reason: 'bad-signature' };
    let claims: T;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as T;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (claims?.t !== kind) return { ok: false, reason: 'wrong-kind' };
    if (typeof claims.exp !== 'number' || claims.exp <= this.now()) return { ok: false, reason: 'expired' };
    return { ok: true, claims, kid };
  }

  issueLink(workspaceId: string, readOnly: boolean, sessionTtlSeconds: number, linkTtlSeconds: number): { token: string; claims: LinkClaims } {
    const claims: LinkClaims = { t: 'link', jti: randomBytes(16).toString('hex'), ws: workspaceId, ro: readOnly, ttl: sessionTtlSeconds, exp: this.now() + linkTtlSeconds * 1000 };
    return { token: this.sign(claims), claims };
  }

  verifyLink(token: string): Verified<LinkClaims> {
    return this.verify<LinkClaims>(token, 'link');
  }

  issueSession(link: LinkClaims): { cookie: string; claims: SessionClaims } {
    const claims: SessionClaims = { t: 'session', sid: randomBytes(16).toString('hex'), ws: link.ws, ro: link.ro, exp: this.now() + link.ttl * 1000 };
    return { cookie: this.sign(claims), claims };
  }

  verifySession(cookie: string): Verified<SessionClaims> {
    return this.verify<SessionClaims>(cookie, 'session');
  }

  /** The CSRF token of a session: derived from its id with the key that signed it. */
  csrfToken(session: SessionClaims, kid: string): string {
    const key = this.keys.find((k) => k.id === kid) ?? this.keys[0]!;
    return b64(mac(key.key, `csrf.${session.sid}`));
  }

  checkCsrf(session: SessionClaims, kid: string, presented: string | undefined): boolean {
    if (!presented) return false;
    const want = Buffer.from(this.csrfToken(session, kid));
    const got = Buffer.from(presented);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

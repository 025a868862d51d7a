// Caller permissions on gRPC: who is calling (an mTLS client certificate's URI SAN or CN, or a
// bearer token whose SHA-256 the policy holds) and what it may call (methods, workspaces).
// Checked once per call in the GrpcServer adapter, before the handler; health and reflection are
// not behind it (Kubernetes probes cannot present credentials; reflection serves the public
// contract only, and under mTLS still needs a certificate from the client CA).
import { createHash } from 'node:crypto';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { permissionDenied, unauthenticated } from './errors';

/** One caller of the policy file (GRPC_PERMISSIONS_FILE, JSON). */
export interface CallerPolicy {
  /** Shown in logs and in PERMISSION_DENIED messages. */
  name: string;
  /** Matched against the verified client certificate's URI SANs and its subject CN. */
  certificate?: string;
  /** Lowercase hex SHA-256 of the bearer token (`authorization: Bearer <token>`); the token itself is never stored. */
  tokenSha256?: string;
  /** `*`, `<package.Service>/*` or `<package.Service>/<Method>`. */
  methods: string[];
  /** `*`, an exact workspace id, or a prefix ending in `*` (`acme-*`). */
  workspaces: string[];
}

export interface PermissionsPolicy {
  callers: CallerPolicy[];
}

/** What the policy check needs to know about the contracts (to refuse typos at start). */
export interface KnownMethods {
  hasSymbol(fqn: string): boolean;
}

const CALLER_KEYS = new Set(['name', 'certificate', 'tokenSha256', 'methods', 'workspaces']);

/**
 * Parses and checks a policy document; returns it with every problem found (each names the
 * caller and the key). Token hashes are never echoed.
 */
export function parsePermissions(text: string, known?: KnownMethods): { policy: PermissionsPolicy; problems: string[] } {
  const problems: string[] = [];
  const policy: PermissionsPolicy = { callers: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { policy, problems: [`is not valid JSON (${(err as Error).message})`] };
  }
  const callers = (doc as { callers?: unknown } | null)?.callers;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(callers)) return { policy, problems: ['must be {"callers": [...]}'] };
  const names = new Set<string>();
  const certs = new Set<string>();
  const hashes = new Set<string>();
  callers.forEach((raw: unknown, i) => {
    const at = `callers[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return problems.push(`${at} must be an object`);
    const c = raw as Record<string, unknown>;
    for (const k of Object.keys(c)) if (!CALLER_KEYS.has(k)) problems.push(`${at}: unknown key "${k}" (allowed: ${[...CALLER_KEYS].join(', ')})`);
    const name = typeof c.name === 'string' && c.name.trim() ? c.name.trim() : undefined;
    if (!name) problems.push(`${at}.name is required`);
    else if (names.has(name)) problems.push(`${at}.name "${name}" is used twice`);
    else names.add(name);
    const who = name ? `caller "${name}"` : at;
    const certificate = c.certificate === undefined ? undefined : typeof c.certificate === 'string' && c.certificate ? c.certificate : (problems.push(`${who}: certificate must be a non-empty string (a URI SAN or CN)`), undefined);
    const tokenSha256 =
      c.tokenSha256 === undefined ? undefined : typeof c.tokenSha256 === 'string' && /^[0-9a-fA-F]{64}$/.test(c.tokenSha256) ? c.tokenSha256.toLowerCase() : (problems.push(`${who}: tokenSha256 must be 64 hex digits (sha256sum of the token)`), undefined);
    if (certificate === undefined && tokenSha256 === undefined) problems.push(`${who}: needs a certificate or a tokenSha256 to be recognised by`);
    if (certificate !== undefined) {
      if (certs.has(certificate)) problems.push(`${who}: certificate "${certificate}" belongs to another caller too`);
      certs.add(certificate);
    }
    if (tokenSha256 !== undefined) {
      if (hashes.has(tokenSha256)) problems.push(`${who}: tokenSha256 belongs to another caller too`);
      hashes.add(tokenSha256);
    }
    const list = (key: 'methods' | 'workspaces'): string[] => {
      const v = c[key];
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x.length > 0)) {
        problems.push(`${who}: ${key} must be a non-empty list of strings ("*" for all)`);
        return [];
      }
      return v as string[];
    };
    const methods = list('methods');
    for (const m of methods) {
      const problem = methodPatternProblem(m, known);
      if (problem) problems.push(`${who}: methods entry "${m}" ${problem}`);
    }
    const workspaces = list('workspaces');
    for (const w of workspaces) if (w.indexOf('*') !== -1 && w.indexOf('*') !== w.length - 1) problems.push(`${who}: workspaces entry "${w}" may only end in * (a prefix)`);
    if (name) policy.callers.push({ name, ...(certificate ? { certificate } : {}), ...(tokenSha256 ? { tokenSha256 } : {}), methods, workspaces });
  });
  return { policy, problems };
}

function methodPatternProblem(pattern: string, known?: KnownMethods): string | undefined {
  if (pattern === '*') return undefined;
  const m = /^([A-Za-z_][\w.]*)\/(\*|[A-Za-z_]\w*)$/.exec(pattern);
  if (!m) return 'must be "*", "<package.Service>/*" or "<package.Service>/<Method>"';
  if (known && !known.hasSymbol(m[1]!)) return `names no known service ${m[1]}`;
  if (known && m[2] !== '*' && !known.hasSymbol(`${m[1]}.${m[2]}`)) return `names no method ${m[2]} of ${m[1]}`;
  return undefined;
}

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** The identity names a verified client certificate offers: its URI SANs, then its CN. */
export function certificateNames(cert: { subject?: { CN?: string | string[] }; subjectaltname?: string } | undefined): string[] {
  if (!cert) return [];
  const out: string[] = [];
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const p = part.trim();
    if (p.startsWith('URI:')) out.push(p.slice(4));
  }
  const cn = cert.subject?.CN;
  for (const c of Array.isArray(cn) ? cn : cn ? [cn] : []) out.push(c);
  return out;
}

/** Workspace ids a request names: `workspace_id` at the top, or in its message fields and lists (PublishEvent's event, PublishEvents' events). */
export function requestWorkspaces(request: unknown): string[] {
  const out = new Set<string>();
  const take = (v: unknown) => {
    const w = (v as { workspaceId?: unknown } | null)?.workspaceId;
    // An empty id is the handler's to refuse (INVALID_ARGUMENT naming the field).
    if (typeof w === 'string' && w !== '') out.add(w);
  };
  if (typeof request !== 'object' || request === null) return [];
  take(request);
  for (const v of Object.values(request)) {
    if (Array.isArray(v)) v.forEach(take);
    else if (typeof v === 'object' && v !== null && !(v instanceof Date) && !Buffer.isBuffer(v)) take(v);
  }
  return [...out];
}

const matches = (patterns: string[], value: string) => patterns.some((p) => p === '*' || p === value || (p.endsWith('*') && value.startsWith(p.slice(0, -1))));

export class Authorizer {
  private readonly byCertificate = new Map<string, CallerPolicy>();
  private readonly byToken = new Map<string, CallerPolicy>();

  constructor(policy: PermissionsPolicy) {
    for (const c of policy.callers) {
      if (c.certificate) this.byCertificate.set(c.certificate, c);
      if (c.tokenSha256) this.byToken.set(c.tokenSha256, c);
    }
  }

  /** The caller of a call: certificate first, then bearer token. Throws UNAUTHENTICATED. */
  identify(call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext' | 'metadata'>): CallerPolicy {
    for (const name of certificateNames(call.getAuthContext()?.sslPeerCertificate)) {
      const c = this.byCertificate.get(name);
      if (c) return c;
    }
    const header = call.metadata.get('authorization')[0];
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header.toString());
      const c = m ? this.byToken.get(sha256Hex(m[1]!)) : undefined;
      if (c) return c;
      throw unauthenticated('the bearer token is not known here: send "authorization: Bearer <token>" with a token listed (as its SHA-256) in the permissions policy');
    }
    throw unauthenticated('no caller identity: present a client certificate or an "authorization: Bearer <token>" header that the permissions policy lists');
  }

  /** Throws PERMISSION_DENIED naming the method or workspace the caller may not use. */
  authorize(caller: CallerPolicy, service: string, method: string, request: unknown): void {
    const full = `${service}/${method}`;
    if (!matches(caller.methods, full)) {
      throw permissionDenied(`caller "${caller.name}" may not call ${full}; ask for it to be added to this caller's methods in the permissions policy`);
    }
    for (const w of requestWorkspaces(request)) {
      if (!matches(caller.workspaces, w)) throw permissionDenied(`caller "${caller.name}" may not call ${full} for workspace ${w}; its workspaces are ${caller.workspaces.join(', ')}`);
    }
  }
}

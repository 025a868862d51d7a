// The only reader of process.env in the portal. See the README's configuration table (PORTAL_*).
import path from 'node:path';
import { EnvReader, readGrpcClientSecurity, readServiceSettings, type GrpcClientSecurity, type ServiceSettings } from '@hookline/service-kit';

/** One HMAC key for link tokens and session cookies, named so keys can rotate. */
export interface SigningKey {
  id: string;
  key: Buffer;
}

export interface PortalConfig extends ServiceSettings {
  /** Where the browser-facing HTTP server listens. 0 picks a free port (tests). */
  httpHost: string;
  httpPort: number;
  /** The portal's URL as browsers reach it; one-time links start with it. Default http://<httpHost>:<httpPort>. */
  publicUrl: string | undefined;
  /** host:port of endpoint-registry and of a dispatcher (any replica serves DeliveryService). */
  registryAddress: string;
  dispatcherAddress: string;
  /** TLS and identity of the portal's calls to the registry and the dispatchers (REGISTRY_TLS_*, REGISTRY_TOKEN…, DISPATCHER_TLS_*, DISPATCHER_TOKEN…). */
  registryClient: GrpcClientSecurity;
  dispatcherClient: GrpcClientSecurity;
  /** The first key signs; every key verifies (rotation: add the new key first, drop the old one after the longest session). */
  signingKeys: SigningKey[];
  /** How long a one-time link can be opened. Default 300 s. */
  linkTtlSeconds: number;
  /** Session lifetime when CreatePortalSession leaves ttl unset. Default 3600 s; max 86400 s. */
  defaultSessionTtlSeconds: number;
  /** CSP frame-ancestors sources (who may embed the portal). Default 'none' (no embedding). */
  frameAncestors: string[];
  /** The registry's TARGET_ALLOWLIST, so the browser's as-you-type URL check agrees with the registry. */
  targetAllowlist: string[];
  /** Theming: brand colour (#rgb/#rrggbb), logo URL (https, or a path on the portal), light/dark/auto, product name. */
  brandColor: string;
  logoUrl: string | undefined;
  theme: 'light' | 'dark' | 'auto';
  productName: string;
  /** Built front end (vite build output). */
  webDir: string;
}

const KEY_RE = /^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/=_-]+)$/;

export function loadConfig(env: Record<string, string | undefined>): PortalConfig {
  const r = new EnvReader(env);
  const config: PortalConfig = {
    ...readServiceSettings(r, { grpcPort: 50054, mongoDatabase: 'hookline_portal' }),
    httpHost: r.string('PORTAL_HTTP_HOST', '0.0.0.0'),
    httpPort: r.int('PORTAL_HTTP_PORT', 8080, { min: 0, max: 65535 }),
    publicUrl: r.optional('PORTAL_PUBLIC_URL'),
    registryAddress: r.string('REGISTRY_ADDRESS', '127.0.0.1:50051'),
    dispatcherAddress: r.string('DISPATCHER_ADDRESS', '127.0.0.1:50053'),
    registryClient: readGrpcClientSecurity(r, 'REGISTRY'),
    dispatcherClient: readGrpcClientSecurity(r, 'DISPATCHER'),
    signingKeys: [],
    linkTtlSeconds: r.int('PORTAL_LINK_TTL_SECONDS', 300, { min: 10, max: 3600 }),
    defaultSessionTtlSeconds: r.int('PORTAL_SESSION_TTL_SECONDS', 3600, { min: 60, max: 86_400 }),
    frameAncestors: r.list('PORTAL_FRAME_ANCESTORS', ["'none'"]),
    targetAllowlist: r.list('PORTAL_TARGET_ALLOWLIST', []),
    brandColor: r.string('PORTAL_BRAND_COLOR', '#4f46e5'),
    logoUrl: r.optional('PORTAL_LOGO_URL'),
    theme: r.oneOf('PORTAL_THEME', ['light', 'dark', 'auto'] as const, 'auto'),
    productName: r.string('PORTAL_PRODUCT_NAME', 'Webhooks'),
    webDir: r.string('PORTAL_WEB_DIR', path.join(__dirname, '..', 'dist', 'web')),
  };
  // PORTAL_SIGNING_KEYS: "id:base64key,id2:base64key"; at least 32 bytes each. Never logged.
  for (const entry of r.list('PORTAL_SIGNING_KEYS')) {
    const m = KEY_RE.exec(entry);
    const key = m ? Buffer.from(m[2]!, 'base64') : Buffer.alloc(0);
    if (!m || key.length < 32) r.problem(`PORTAL_SIGNING_KEYS: each entry is <id>:<base64 of at least 32 random bytes> (entry ${config.signingKeys.length + 1} is not)`);
    else if (config.signingKeys.some((k) => k.id === m[1])) r.problem(`PORTAL_SIGNING_KEYS: key id ${m[1]} appears twice`);
    else config.signingKeys.push({ id: m[1]!, key });
  }
  if (config.signingKeys.length === 0 && !r.optional('PORTAL_SIGNING_KEYS')) r.problem('PORTAL_SIGNING_KEYS is required (e.g. k1:$(openssl rand -base64 32))');
  if (!/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(config.brandColor)) r.problem(`PORTAL_BRAND_COLOR=${JSON.stringify(config.brandColor)} is not a #rgb or #rrggbb colour`);
  if (config.logoUrl !== undefined && !/^(https:\/\/[^\s"'()]+|\/[^\s"'()]*)$/.test(config.logoUrl)) r.problem('PORTAL_LOGO_URL must be an https:// URL or a path on the portal');
  for (const a of config.frameAncestors) {
    if (!/^('none'|'self'|https:\/\/[A-Za-z0-9.*:-]+|http:\/\/(localhost|127\.0\.0\.1)(:\d+)?)$/.test(a)) r.problem(`PORTAL_FRAME_ANCESTORS: ${JSON.stringify(a)} is not 'none', 'self' or an https origin`);
  }
  if (config.frameAncestors.includes("'none'") && config.frameAncestors.length > 1) r.problem("PORTAL_FRAME_ANCESTORS: 'none' cannot be combined with other sources");
  if (config.publicUrl !== undefined) {
    try {
      const u = new URL(config.publicUrl);
      if (u.protocol !== 'https:' && !['localhost', '127.0.0.1', '[::1]'].includes(u.hostname)) r.problem('PORTAL_PUBLIC_URL must be https (plain http only on loopback)');
      config.publicUrl = config.publicUrl.replace(/\/+$/, '');
    } catch {
      r.problem(`PORTAL_PUBLIC_URL=${JSON.stringify(config.publicUrl)} is not a URL`);
    }
  }
  r.done();
  return config;
}

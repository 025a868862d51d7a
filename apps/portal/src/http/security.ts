// Response headers every answer carries, and the session cookie's attributes.
import type { PortalConfig } from '../config';

export const SESSION_COOKIE = '__Host-hookline_portal';
export const CSRF_HEADER = 'x-csrf-token';

/**
 * Strict CSP: scripts, styles, fonts and XHR from the portal's own origin only, no inline script or
 * style, no plugins, no <base>; frame-ancestors from PORTAL_FRAME_ANCESTORS (default 'none').
 * React sets style properties through the CSSOM, which CSP does not govern, so 'unsafe-inline' is
 * not needed; the brand colour arrives as CSS variables in /theme.css.
 */
export function securityHeaders(config: PortalConfig): Record<string, string> {
  const logoOrigin = config.logoUrl?.startsWith('https://') ? ` ${new URL(config.logoUrl).origin}` : '';
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src 'self' data:${logoOrigin}`,
    "font-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${config.frameAncestors.join(' ')}`,
  ].join('; ');
  const headers: Record<string, string> = {
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  };
  // Legacy browsers that ignore frame-ancestors: only the no-embedding case maps onto X-Frame-Options.
  if (config.frameAncestors.includes("'none'")) headers['x-frame-options'] = 'DENY';
  if (config.publicUrl?.startsWith('https://')) headers['strict-transport-security'] = 'max-age=31536000';
  return headers;
}

/**
 * HttpOnly (no script reads it), Secure, SameSite=None so it is sent inside the embedding
 * product's iframe, Partitioned (CHIPS) so browsers that block third-party cookies still keep it,
 * per top-level site. __Host- prefix: no Domain, Path=/, Secure, so no sibling subdomain can set it.
 */
export function sessionCookie(value: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; Secure; SameSite=None; Partitioned`;
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

// Which webhook targets Hookline may connect to. Used twice: by the registry when a URL is
// registered (IP literals and obviously-internal names), and by the dispatcher at connect time
// on every resolved address (DNS can change after registration). Off-by-default allow-list for
// tests and private deployments.
import { BlockList, isIP } from 'node:net';

export const MAX_URL_LENGTH = 2048;

// Non-public IPv4 ranges (IANA special-purpose registry).
const V4_BLOCKED: [string, number][] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
];

// Non-public IPv6 ranges, including every transition form that can embed an IPv4 address
// (so a public-looking v6 address cannot smuggle 127.0.0.1 or 10.x through).
const V6_BLOCKED: [string, number][] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::ffff:0:0', 96], // IPv4-mapped (checked as IPv4 too, but never connected to as v6)
  ['::', 96], // IPv4-compatible (deprecated)
  ['64:ff9b::', 96], // NAT64 well-known prefix
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo
  ['2001:2::', 48], // benchmarking
  ['2001:db8::', 32], // documentation
  ['2001:10::', 28], // ORCHID
  ['2001:20::', 28], // ORCHIDv2
  ['2002::', 16], // 6to4
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];

// Separate lists: a BlockList matches IPv4 addresses against IPv6 rules through their mapped
// form, so one shared list with ::ffff:0:0/96 would refuse every IPv4 address.
const blockedV4 = new BlockList();
const blockedV6 = new BlockList();
for (const [a, p] of V4_BLOCKED) blockedV4.addSubnet(a, p, 'ipv4');
for (const [a, p] of V6_BLOCKED) blockedV6.addSubnet(a, p, 'ipv6');

const BLOCKED_NAMES = [/^localhost$/i, /\.localhost$/i, /\.localdomain$/i, /\.local$/i, /\.internal$/i, /\.home\.arpa$/i, /^metadata\.google\.internal$/i];

/** A DNS name with trailing dots is the same name without them (`localhost.` is localhost). */
const bareName = (host: string): string => host.replace(/\.+$/, '');

/** Operator allow-list: CIDRs and exact host names (case-insensitive). Empty by default. */
export class AllowList {
  private readonly cidrs = new BlockList();
  private readonly hosts = new Set<string>();
  readonly empty: boolean;

  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const entry = raw.trim();
      const [addr, bits] = entry.split('/');
      const family = isIP(addr ?? '');
      if (family !== 0) {
        const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
        this.cidrs.addSubnet(addr!, prefix, family === 4 ? 'ipv4' : 'ipv6');
      } else if (entry) {
        this.hosts.add(entry.toLowerCase());
      }
    }
    this.empty = entries.length === 0;
  }

  /** Throws a readable error for an entry that is neither an IP/CIDR nor a host name. */
  static validate(entries: readonly string[]): string[] {
    const problems: string[] = [];
    for (const e of entries) {
      const [addr, bits] = e.split('/');
      const family = isIP(addr ?? '');
      if (family !== 0) {
        const max = family === 4 ? 32 : 128;
        if (bits !== undefined && !(Number.isInteger(Number(bits)) && Number(bits) >= 0 && Number(bits) <= max)) problems.push(`${e}: prefix must be 0..${max}`);
      } else if (!/^[a-z0-9.-]+$/i.test(e)) problems.push(`${e}: not an IP, CIDR or host name`);
    }
    return problems;
  }

  hasHost(host: string): boolean {
    return this.hosts.has(bareName(host).toLowerCase());
  }

  hasAddress(ip: string): boolean {
    const family = isIP(ip);
    return family !== 0 && this.cidrs.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** `[::1]` → `::1`; anything else unchanged. */
export function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:10.0.0.1` or `::ffff:a00:1`). */
function mappedV4(ip: string): string | undefined {
  const m = /^::ffff:(?:0+:)?(.+)$/i.exec(ip);
  if (!m) return undefined;
  const rest = m[1]!;
  if (isIP(rest) === 4) return rest;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(rest);
  if (!hex) return undefined;
  const hi = parseInt(hex[1]!, 16);
  const lo = parseInt(hex[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Why an address must not be connected to, or undefined when it is public (or allow-listed). */
export function addressRefusal(ip: string, allow: AllowList): string | undefined {
  const addr = stripBrackets(ip);
  const family = isIP(addr);
  if (family === 0) return `${ip} is not an IP address`;
  if (allow.hasAddress(addr)) return undefined;
  const v4 = family === 6 ? mappedV4(addr) : undefined;
  if (v4 !== undefined && !allow.hasAddress(v4) && blockedV4.check(v4, 'ipv4')) return `${ip} maps to non-public IPv4 ${v4}`;
  if (v4 !== undefined && allow.hasAddress(v4)) return undefined;
  if (family === 4 ? blockedV4.check(addr, 'ipv4') : blockedV6.check(addr, 'ipv6')) return `${ip} is not a public address (private, loopback, link-local, reserved or transition range)`;
  return undefined;
}

/**
 * Checks a URL at registration. Returns a problem description for the `url` field, or undefined.
 * Host names are checked for shape only; their addresses are checked at connect time.
 */
export function urlRefusal(raw: string, allow: AllowList): string | undefined {
  if (raw.length === 0) return 'is required';
  if (raw.length > MAX_URL_LENGTH) return `is longer than ${MAX_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a valid absolute URL';
  }
  if (url.protocol !== 'https:') return `must use https (got ${url.protocol.replace(':', '')})`;
  if (url.username || url.password) return 'must not contain credentials (user:password@)';
  if (url.hash) return 'must not contain a #fragment';
  const host = stripBrackets(url.hostname);
  if (allow.hasHost(host)) return undefined;
  const name = bareName(host);
  const family = isIP(host);
  if (family !== 0) {
    const why = addressRefusal(host, allow);
    return why ? `host ${why}` : undefined;
  }
  // The WHATWG parser already turned decimal/octal/hex IPv4 forms (http://2130706433/) into dotted quads.
  if (name === '' || isIP(name) !== 0) return `host ${host} is not a public address or fully qualified public name`;
  if (BLOCKED_NAMES.some((re) => re.test(name))) return `host ${host} is an internal name`;
  if (!name.includes('.')) return `host ${host} is not a fully qualified public name`;
  return undefined;
}

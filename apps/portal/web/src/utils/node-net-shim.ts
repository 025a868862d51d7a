// The two pieces of node:net that libs/url-policy uses, for the browser: isIP and a BlockList
// that matches addresses against subnets of the same family (url-policy keeps separate v4 and v6
// lists, so cross-family matching is never needed).

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function v4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/** Parses an IPv6 address (with :: and an optional dotted IPv4 tail) into 128 bits, or undefined. */
function v6ToBig(ip: string): bigint | undefined {
  let s = ip.toLowerCase();
  const lastColon = s.lastIndexOf(':');
  if (lastColon < 0 || s.includes('%')) return undefined;
  const last = s.slice(lastColon + 1);
  if (last.includes('.')) {
    if (!V4.test(last)) return undefined;
    const n = Number(v4ToBig(last));
    s = `${s.slice(0, lastColon + 1)}${((n >>> 16) & 0xffff).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  if (halves.length === 1 && head.length !== 8) return undefined;
  if (halves.length === 2 && head.length + rest.length > 7) return undefined;
  const groups = [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  let out = 0n;
  for (const g of groups) out = (out << 16n) | BigInt(parseInt(g, 16));
  return out;
}

export function isIP(input: string): 0 | 4 | 6 {
  if (V4.test(input)) return 4;
  if (input.includes(':') && v6ToBig(input) !== undefined) return 6;
  return 0;
}

type Family = 'ipv4' | 'ipv6';

export class BlockList {
  private readonly subnets: { family: Family; base: bigint; mask: bigint }[] = [];

  addSubnet(address: string, prefix: number, family: Family = 'ipv4'): void {
    const bits = family === 'ipv4' ? 32n : 128n;
    const value = family === 'ipv4' ? v4ToBig(address) : v6ToBig(address);
    if (value === undefined) throw new Error(`invalid address ${address}`);
    const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << (bits - BigInt(prefix));
    this.subnets.push({ family, base: value & mask, mask });
  }

  check(address: string, family: Family = 'ipv4'): boolean {
    const value = family === 'ipv4' ? (V4.test(address) ? v4ToBig(address) : undefined) : v6ToBig(address);
    if (value === undefined) return false;
    return this.subnets.some((s) => s.family === family && (value & s.mask) === s.base);
  }
}

// The browser runs libs/url-policy with web/src/utils/node-net-shim.ts standing in for node:net.
// This checks that stand-in against node:net itself, and that urlRefusal gives the same answers
// (same words) through both, so the page's as-you-type message is the registry's.
import * as net from 'node:net';
import * as shim from '../web/src/utils/node-net-shim';

const ADDRESSES = [
  '1.2.3.4', '10.0.0.1', '127.0.0.1', '169.254.169.254', '172.16.5.4', '172.32.0.1', '192.168.1.1', '8.8.8.8', '255.255.255.255', '0.0.0.0', '100.64.0.1', '203.0.113.9',
  '::1', '::', '2606:4700::1111', 'fe80::1', 'fc00::1', 'fd12:3456::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1', '2001:db8::1', '2002:c000:204::1', 'ff02::1', '2a00:1450:4001:81b::200e',
  '1.2.3', '1.2.3.256', '01.2.3.4', 'abc', '1::2::3', '12345::1', ':::1', '',
];
const SUBNETS: [string, number, 'ipv4' | 'ipv6'][] = [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['127.0.0.0', 8, 'ipv4'], ['0.0.0.0', 0, 'ipv4'], ['fc00::', 7, 'ipv6'], ['::ffff:0:0', 96, 'ipv6'], ['2001:db8::', 32, 'ipv6'], ['::1', 128, 'ipv6']];

describe('browser stand-in for node:net', () => {
  it.each(ADDRESSES)('isIP(%j) agrees with node', (a) => {
    expect(shim.isIP(a)).toBe(net.isIP(a));
  });

  it.each(SUBNETS)('BlockList %s/%d (%s) agrees with node on every address', (addr, prefix, family) => {
    const a = new net.BlockList();
    const b = new shim.BlockList();
    a.addSubnet(addr, prefix, family);
    b.addSubnet(addr, prefix, family);
    for (const ip of ADDRESSES.filter((x) => net.isIP(x) === (family === 'ipv4' ? 4 : 6))) expect([ip, b.check(ip, family)]).toEqual([ip, a.check(ip, family)]);
  });

  it('urlRefusal gives the same message with the stand-in as with node:net', () => {
    jest.isolateModules(() => {
      jest.doMock('node:net', () => shim);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const browser = require('@hookline/url-policy') as typeof import('@hookline/url-policy');
      jest.dontMock('node:net');
      const node = jest.requireActual('@hookline/url-policy') as typeof import('@hookline/url-policy');
      const urls = ['http://example.com/', 'https://10.0.0.1/x', 'https://[::1]/', 'https://[::ffff:127.0.0.1]/', 'https://localhost/', 'https://example.com/' + 'a'.repeat(3000), 'not a url', '', 'https://user:pw@example.com/', 'https://example.com/#x', 'https://intranet/', 'https://hooks.example.com/in', 'https://8.8.8.8/'];
      for (const u of urls) expect([u.slice(0, 40), browser.urlRefusal(u, new browser.AllowList([]))]).toEqual([u.slice(0, 40), node.urlRefusal(u, new node.AllowList([]))]);
      expect(browser.urlRefusal('https://localhost:8443/', new browser.AllowList(['localhost']))).toBeUndefined();
    });
  });
});

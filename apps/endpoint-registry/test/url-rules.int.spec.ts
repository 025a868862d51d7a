// Every URL rejection class through the real service (CreateEndpoint and UpdateEndpoint), each
// answered INVALID_ARGUMENT on the `url` field with the reason, and the operator allow-list.
import { status } from '@grpc/grpc-js';
import { uniquePrefix } from '@hookline/testing';
import { loadConfig } from '../src/config';
import { calls, expectInvalid, rpcError, startRegistry, statusDetails, type Calls, type RegistryHarness } from './harness';

jest.setTimeout(60_000);

const NOT_PUBLIC = /not a public address/;
const MAPPED = /maps to non-public IPv4/;
const INTERNAL_NAME = /internal name/;

// [url, why] — one line per rejection class; IPv6 and mapped/transition forms included.
const REFUSED: [string, RegExp][] = [
  // scheme, shape, credentials, length
  ['http://hooks.example.com/in', /must use https \(got http\)/],
  ['ftp://hooks.example.com/in', /must use https \(got ftp\)/],
  ['ws://hooks.example.com/in', /must use https/],
  ['hooks.example.com/in', /not a valid absolute URL/],
  ['https://', /not a valid absolute URL/],
  ['https://user:pass@hooks.example.com/in', /credentials/],
  ['https://user@hooks.example.com/in', /credentials/],
  ['https://:pass@hooks.example.com/in', /credentials/],
  ['https://hooks.example.com/in#frag', /fragment/],
  [`https://hooks.example.com/${'a'.repeat(2048)}`, /longer than 2048/],
  // IPv4 literals, in every spelling the URL parser accepts
  ['https://127.0.0.1/in', NOT_PUBLIC], // loopback
  ['https://127.1/in', NOT_PUBLIC], // short form
  ['https://2130706433/in', NOT_PUBLIC], // decimal
  ['https://0x7f000001/in', NOT_PUBLIC], // hex
  ['https://0177.0.0.1/in', NOT_PUBLIC], // octal
  ['https://127.0.0.1./in', NOT_PUBLIC], // trailing dot
  ['https://0.0.0.0/in', NOT_PUBLIC], // this network
  ['https://10.1.2.3/in', NOT_PUBLIC], // private
  ['https://172.16.0.1/in', NOT_PUBLIC],
  ['https://172.31.255.254/in', NOT_PUBLIC],
  ['https://192.168.1.1/in', NOT_PUBLIC],
  ['https://169.254.169.254/latest/meta-data', NOT_PUBLIC], // link-local (cloud metadata)
  ['https://100.64.0.1/in', NOT_PUBLIC], // CGNAT
  ['https://100.127.255.254/in', NOT_PUBLIC],
  ['https://192.0.0.8/in', NOT_PUBLIC], // IETF protocol assignments
  ['https://192.0.2.10/in', NOT_PUBLIC], // documentation
  ['https://198.18.0.1/in', NOT_PUBLIC], // benchmarking
  ['https://240.0.0.1/in', NOT_PUBLIC], // reserved
  ['https://255.255.255.255/in', NOT_PUBLIC], // broadcast
  ['https://224.0.0.1/in', NOT_PUBLIC], // multicast
  ['https://239.255.255.250/in', NOT_PUBLIC],
  // IPv6 literals
  ['https://[::1]/in', NOT_PUBLIC], // loopback
  ['https://[::1]:8443/in', NOT_PUBLIC],
  ['https://[::]/in', NOT_PUBLIC], // unspecified
  ['https://[fc00::1]/in', NOT_PUBLIC], // unique local
  ['https://[fd12:3456:789a::1]/in', NOT_PUBLIC],
  ['https://[fe80::1]/in', NOT_PUBLIC], // link-local
  ['https://[fec0::1]/in', NOT_PUBLIC], // site-local
  ['https://[ff02::1]/in', NOT_PUBLIC], // multicast
  ['https://[2001:db8::1]/in', NOT_PUBLIC], // documentation
  ['https://[100::1]/in', NOT_PUBLIC], // discard
  // IPv4-mapped and transition forms that embed an IPv4 address
  ['https://[::ffff:127.0.0.1]/in', MAPPED],
  ['https://[::ffff:7f00:1]/in', MAPPED],
  ['https://[0:0:0:0:0:ffff:10.0.0.1]/in', MAPPED],
  ['https://[::ffff:169.254.169.254]/in', MAPPED],
  ['https://[::ffff:192.168.0.1]/in', MAPPED],
  ['https://[::ffff:8.8.8.8]/in', NOT_PUBLIC], // mapped form is refused even for a public IPv4
  ['https://[::127.0.0.1]/in', NOT_PUBLIC], // IPv4-compatible
  ['https://[64:ff9b::a00:1]/in', NOT_PUBLIC], // NAT64
  ['https://[64:ff9b:1::1]/in', NOT_PUBLIC], // local-use NAT64
  ['https://[2002:7f00:1::1]/in', NOT_PUBLIC], // 6to4
  ['https://[2001:0:4136:e378::1]/in', NOT_PUBLIC], // Teredo
  // names
  ['https://localhost/in', INTERNAL_NAME],
  ['https://LOCALHOST:8443/in', INTERNAL_NAME],
  ['https://localhost./in', INTERNAL_NAME],
  ['https://api.localhost/in', INTERNAL_NAME],
  ['https://api.localhost./in', INTERNAL_NAME],
  ['https://localhost.localdomain/in', INTERNAL_NAME],
  ['https://printer.local/in', INTERNAL_NAME],
  ['https://printer.local./in', INTERNAL_NAME],
  ['https://metadata.google.internal/computeMetadata/v1', INTERNAL_NAME],
  ['https://metadata.google.internal./computeMetadata/v1', INTERNAL_NAME],
  ['https://db.internal/in', INTERNAL_NAME],
  ['https://nas.home.arpa/in', INTERNAL_NAME],
  ['https://intranet/in', /not a fully qualified public name/],
  ['https://intranet./in', /not a fully qualified public name/],
];

const ACCEPTED = [
  'https://hooks.example.com/in',
  'https://hooks.example.com:8443/in?token=abc',
  'HTTPS://Hooks.Example.COM/in',
  'https://hooks.example.com./in',
  'https://8.8.8.8/in',
  'https://[2606:4700:4700::1111]/in',
  `https://hooks.example.com/${'a'.repeat(2048 - 'https://hooks.example.com/'.length)}`,
];

describe('endpoint-registry URL rules', () => {
  let h: RegistryHarness;
  let c: Calls;
  const ws = `ws-${uniquePrefix('u')}`;

  beforeAll(async () => {
    h = await startRegistry({ label: 'url' });
    c = calls(h.client);
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('has no allow-list unless the operator sets one', () => {
    expect(h.config.targetAllowList).toEqual([]);
    expect(() => loadConfig({ ...h.env, TARGET_ALLOWLIST: '10.0.0.0/33,not a host!' })).toThrow(/TARGET_ALLOWLIST: 10\.0\.0\.0\/33.*\n.*TARGET_ALLOWLIST: not a host!/s);
  });

  it.each(REFUSED)('CreateEndpoint refuses %s', async (url, why) => {
    const description = await expectInvalid(c.createEndpoint({ workspaceId: ws, url }), 'url', why);
    expect(description.length).toBeGreaterThan(5);
  });

  it('refuses the same URLs in UpdateEndpoint, and leaves the endpoint as it was', async () => {
    const { endpoint } = await c.createEndpoint({ workspaceId: ws, url: 'https://hooks.example.com/update' });
    for (const [url, why] of REFUSED) {
      const err = await rpcError(c.updateEndpoint({ workspaceId: ws, endpointId: endpoint!.id, url, updateMask: ['url'] }));
      expect({ url, code: status[err.code] }).toEqual({ url, code: 'INVALID_ARGUMENT' });
      const v = statusDetails(err)!.violations;
      expect(v.map((x) => x.field)).toEqual(['url']);
      expect(v[0]!.description).toMatch(why);
    }
    const got = await c.getEndpoint({ workspaceId: ws, endpointId: endpoint!.id });
    expect(got.endpoint).toMatchObject({ url: 'https://hooks.example.com/update', version: '1' });
  });

  it.each(ACCEPTED)('accepts the public target %s', async (url) => {
    const res = await c.createEndpoint({ workspaceId: ws, url });
    expect(res.endpoint!.url).toBe(url);
  });

  describe('with an operator allow-list', () => {
    let open: RegistryHarness;
    let oc: Calls;
    beforeAll(async () => {
      open = await startRegistry({ label: 'urlallow', env: { TARGET_ALLOWLIST: '127.0.0.1/32,10.20.0.0/16,::1,fd00:1::/32,hooks.corp' } });
      oc = calls(open.client);
    });
    afterAll(async () => {
      await open?.stop();
    });

    it.each([
      'https://127.0.0.1:8443/hook',
      'https://10.20.30.40/hook',
      'https://[::1]:8443/hook',
      'https://[fd00:1::5]/hook',
      'https://[::ffff:127.0.0.1]/hook',
      'https://hooks.corp/hook',
      'https://HOOKS.corp/hook',
    ])('accepts the listed %s', async (url) => {
      const res = await oc.createEndpoint({ workspaceId: ws, url });
      expect(res.endpoint!.url).toBe(url);
    });

    it.each([
      ['https://127.0.0.2/hook', NOT_PUBLIC],
      ['https://10.21.0.1/hook', NOT_PUBLIC],
      ['https://[fd00:2::1]/hook', NOT_PUBLIC],
      ['https://localhost/hook', INTERNAL_NAME],
      ['https://other-host./hook', /not a fully qualified/],
      ['http://hooks.corp/hook', /https/],
      ['https://user:pw@hooks.corp/hook', /credentials/],
    ])('still refuses what it does not list: %s', async (url, why) => {
      await expectInvalid(oc.createEndpoint({ workspaceId: ws, url }), 'url', why);
    });
  });
});

import { addressRefusal, AllowList, urlRefusal } from './index';

const none = new AllowList([]);

describe('addressRefusal', () => {
  it.each([
    '127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
    '224.0.0.1', '255.255.255.255', '198.18.0.1', '192.0.2.5', '::1', '::', 'fc00::1', 'fd12:3456::1', 'fe80::1',
    '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '64:ff9b::a00:1', '2002:7f00:1::', '2001:0:4136:e378::1', 'ff02::1',
    '[::1]', '::ffff:8.8.8.8',
  ])('refuses %s', (ip) => {
    expect(addressRefusal(ip, none)).toBeDefined();
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111'])('accepts public %s', (ip) => {
    expect(addressRefusal(ip, none)).toBeUndefined();
  });

  it('lets the allow-list open exactly what it lists', () => {
    const allow = new AllowList(['127.0.0.1/32', '::1']);
    expect(addressRefusal('127.0.0.1', allow)).toBeUndefined();
    expect(addressRefusal('::1', allow)).toBeUndefined();
    expect(addressRefusal('::ffff:127.0.0.1', allow)).toBeUndefined();
    expect(addressRefusal('127.0.0.2', allow)).toBeDefined();
    expect(addressRefusal('10.0.0.1', allow)).toBeDefined();
  });
});

describe('urlRefusal', () => {
  it.each([
    ['http://example.com/hook', /https/],
    ['ftp://example.com/', /https/],
    ['https://user:pw@example.com/', /credentials/],
    ['https://127.0.0.1/', /not a public/],
    ['https://2130706433/', /not a public/],
    ['https://0x7f.0.0.1/', /not a public/],
    ['https://[::1]/', /not a public/],
    ['https://[::ffff:169.254.169.254]/', /non-public IPv4/],
    ['https://[fd00::1]/', /not a public/],
    ['https://localhost/', /internal name/],
    ['https://api.localhost/', /internal name/],
    ['https://printer.local/', /internal name/],
    ['https://intranet/', /fully qualified/],
    ['not a url', /valid absolute URL/],
    ['', /required/],
    ['https://example.com/' + 'a'.repeat(2100), /longer than 2048/],
    ['https://example.com/#frag', /fragment/],
  ])('refuses %s', (url, why) => {
    expect(urlRefusal(url, none)).toMatch(why);
  });

  it('accepts a public https URL', () => {
    expect(urlRefusal('https://hooks.example.com/in?x=1', none)).toBeUndefined();
  });

  it('accepts allow-listed hosts and addresses only', () => {
    const allow = new AllowList(['localhost', '127.0.0.1/32']);
    expect(urlRefusal('https://localhost:8443/hook', allow)).toBeUndefined();
    expect(urlRefusal('https://127.0.0.1:8443/hook', allow)).toBeUndefined();
    expect(urlRefusal('https://10.0.0.1/hook', allow)).toBeDefined();
  });
});

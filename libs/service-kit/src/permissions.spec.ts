import { Metadata, status } from '@grpc/grpc-js';
import { Authorizer, certificateNames, parsePermissions, requestWorkspaces, sha256Hex } from './permissions';
import { ServiceError } from './errors';
import { contractDescriptors } from './reflection';

const R = 'webhooks.endpoints.v1.EndpointRegistryService';

describe('parsePermissions', () => {
  it('accepts a valid policy and lower-cases token hashes', () => {
    const hash = sha256Hex('t').toUpperCase();
    const { policy, problems } = parsePermissions(JSON.stringify({ callers: [{ name: 'a', tokenSha256: hash, methods: [`${R}/*`], workspaces: ['acme-*'] }] }), contractDescriptors());
    expect(problems).toEqual([]);
    expect(policy.callers[0]).toEqual({ name: 'a', tokenSha256: hash.toLowerCase(), methods: [`${R}/*`], workspaces: ['acme-*'] });
  });

  it('lists every problem, naming the caller and key, never echoing a hash', () => {
    const doc = {
      callers: [
        { name: 'a', certificate: 'x', methods: [`${R}/NoSuchMethod`, 'webhooks.nope.v1.X/*', 'bad pattern'], workspaces: ['a*b'], extra: 1 },
        { name: 'a', tokenSha256: 'abc', methods: [], workspaces: ['*'] },
        { methods: ['*'], workspaces: ['*'] },
      ],
    };
    const { problems } = parsePermissions(JSON.stringify(doc), contractDescriptors());
    expect(problems).toEqual([
      'callers[0]: unknown key "extra" (allowed: name, certificate, tokenSha256, methods, workspaces)',
      `caller "a": methods entry "${R}/NoSuchMethod" names no method NoSuchMethod of ${R}`,
      'caller "a": methods entry "webhooks.nope.v1.X/*" names no known service webhooks.nope.v1.X',
      'caller "a": methods entry "bad pattern" must be "*", "<package.Service>/*" or "<package.Service>/<Method>"',
      'caller "a": workspaces entry "a*b" may only end in * (a prefix)',
      'callers[1].name "a" is used twice',
      'caller "a": tokenSha256 must be 64 hex digits (sha256sum of the token)',
      'caller "a": needs a certificate or a tokenSha256 to be recognised by',
      'caller "a": methods must be a non-empty list of strings ("*" for all)',
      'callers[2].name is required',
      'callers[2]: needs a certificate or a tokenSha256 to be recognised by',
    ]);
  });

  it('refuses what is not a policy document', () => {
    expect(parsePermissions('nope').problems[0]).toMatch(/^is not valid JSON/);
    expect(parsePermissions('{"callers": {}}').problems).toEqual(['must be {"callers": [...]}']);
  });
});

describe('identity and workspaces', () => {
  it('reads URI SANs first, then the CN', () => {
    expect(certificateNames({ subject: { CN: 'tool' }, subjectaltname: 'DNS:a.example, URI:spiffe://hookline/x, URI:urn:y' })).toEqual(['spiffe://hookline/x', 'urn:y', 'tool']);
    expect(certificateNames(undefined)).toEqual([]);
  });

  it('finds workspace ids at the top, in message fields and in lists; empty ids are left to the handler', () => {
    expect(requestWorkspaces({ workspaceId: 'a', endpointId: 'e' })).toEqual(['a']);
    expect(requestWorkspaces({ event: { workspaceId: 'b' } })).toEqual(['b']);
    expect(requestWorkspaces({ events: [{ workspaceId: 'c' }, { workspaceId: 'd' }, { workspaceId: 'c' }] })).toEqual(['c', 'd']);
    expect(requestWorkspaces({ workspaceId: '' })).toEqual([]);
    expect(requestWorkspaces({ name: 'order.created' })).toEqual([]);
  });
});

describe('Authorizer', () => {
  const auth = new Authorizer({
    callers: [
      { name: 'tool', certificate: 'spiffe://hookline/tool', methods: [`${R}/GetEndpoint`], workspaces: ['acme-*'] },
      { name: 'bot', tokenSha256: sha256Hex('secret-token'), methods: ['*'], workspaces: ['ws_1'] },
    ],
  });
  const call = (opts: { uri?: string; token?: string }) => {
    const metadata = new Metadata();
    if (opts.token) metadata.set('authorization', `Bearer ${opts.token}`);
    return { metadata, getAuthContext: () => (opts.uri ? { sslPeerCertificate: { subject: {}, subjectaltname: `URI:${opts.uri}` } as never } : {}) };
  };
  const codeOf = (f: () => unknown) => {
    try {
      f();
      return 'OK';
    } catch (err) {
      return status[(err as ServiceError).code];
    }
  };

  it('identifies by certificate, then by token; anything else is UNAUTHENTICATED', () => {
    expect(auth.identify(call({ uri: 'spiffe://hookline/tool' })).name).toBe('tool');
    expect(auth.identify(call({ token: 'secret-token' })).name).toBe('bot');
    expect(codeOf(() => auth.identify(call({})))).toBe('UNAUTHENTICATED');
    expect(codeOf(() => auth.identify(call({ token: 'other' })))).toBe('UNAUTHENTICATED');
    expect(codeOf(() => auth.identify(call({ uri: 'spiffe://hookline/else' })))).toBe('UNAUTHENTICATED');
  });

  it('allows listed methods for listed workspaces only', () => {
    const tool = auth.identify(call({ uri: 'spiffe://hookline/tool' }));
    expect(codeOf(() => auth.authorize(tool, R, 'GetEndpoint', { workspaceId: 'acme-eu' }))).toBe('OK');
    expect(codeOf(() => auth.authorize(tool, R, 'GetEndpoint', { workspaceId: 'globex' }))).toBe('PERMISSION_DENIED');
    expect(codeOf(() => auth.authorize(tool, R, 'DeleteEndpoint', { workspaceId: 'acme-eu' }))).toBe('PERMISSION_DENIED');
    const bot = auth.identify(call({ token: 'secret-token' }));
    expect(codeOf(() => auth.authorize(bot, 'webhooks.events.v1.EventIngestService', 'PublishEvents', { events: [{ workspaceId: 'ws_1' }, { workspaceId: 'ws_2' }] }))).toBe('PERMISSION_DENIED');
  });
});

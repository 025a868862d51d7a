// The portal's HTTP surface against the real stack: sessions (expired, replayed, forged, rotated
// keys), workspace isolation, read-only sessions, CSRF, security headers, bad input, and the
// secret in exactly one response and in no log.
import { createHmac, randomBytes } from 'node:crypto';
import { linkToken, PortalHttp, startStack, type Stack } from './harness';

jest.setTimeout(180_000);

const forge = (claims: object, kid: string, key: Buffer) => {
  const body = `${kid}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
};

describe('portal HTTP API', () => {
  let stack: Stack;
  const oldKey = { id: 'k1', key: randomBytes(32) };
  const newKey = { id: 'k2', key: randomBytes(32) };
  const wsA = `ws_a_${randomBytes(3).toString('hex')}`;
  const wsB = `ws_b_${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    // Rotation: k2 signs, k1 (the previous key) still verifies.
    stack = await startStack({ signingKeys: [newKey, oldKey], portalEnv: { PORTAL_FRAME_ANCESTORS: 'https://app.example.com' } });
  });
  afterAll(() => stack?.stop());

  const session = async (ws: string, readOnly = false) => {
    const h = new PortalHttp(stack.portalUrl);
    const res = await h.open(await linkToken(stack, ws, readOnly));
    expect(res.status).toBe(200);
    return h;
  };

  it('exchanges a one-time link for an HttpOnly, Secure, SameSite=None, Partitioned cookie, once', async () => {
    const token = await linkToken(stack, wsA);
    const first = new PortalHttp(stack.portalUrl);
    const res = await first.open(token);
    expect(res.status).toBe(200);
    const cookie = res.headers.getSetCookie()[0]!;
    expect(cookie).toMatch(/^__Host-hookline_portal=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=None; Partitioned$/);
    const info = (await res.json()) as { workspaceId: string; readOnly: boolean; csrfToken: string };
    expect(info).toMatchObject({ workspaceId: wsA, readOnly: false });
    expect(info.csrfToken.length).toBeGreaterThan(20);
    expect((await first.json('GET', '/api/endpoints')).status).toBe(200);

    // Replayed: the same link again, from another browser.
    const replay = await new PortalHttp(stack.portalUrl).open(token);
    expect(replay.status).toBe(401);
    expect(replay.headers.getSetCookie()).toEqual([]);
    expect(await replay.text()).toMatch(/already used/);
  });

  it('refuses expired, forged, wrong-key and malformed tokens, and sessions made from them', async () => {
    const h = () => new PortalHttp(stack.portalUrl);
    const now = Date.now();
    const link = { t: 'link', jti: randomBytes(16).toString('hex'), ws: wsA, ro: false, ttl: 3600 };
    // Expired, correctly signed with the current key.
    const expired = await h().open(forge({ ...link, exp: now - 1000 }, newKey.id, newKey.key));
    expect(expired.status).toBe(401);
    expect(await expired.text()).toMatch(/expired/);
    // Forged: right shape, a key id the portal has, a key it does not.
    expect((await h().open(forge({ ...link, exp: now + 60_000 }, newKey.id, randomBytes(32)))).status).toBe(401);
    // Unknown key id; malformed; a session cookie presented as a link.
    expect((await h().open(forge({ ...link, exp: now + 60_000 }, 'k9', newKey.key))).status).toBe(401);
    expect((await h().open('not-a-token')).status).toBe(401);
    expect((await h().open(forge({ t: 'session', sid: 'x', ws: wsA, ro: false, exp: now + 60_000 }, newKey.id, newKey.key))).status).toBe(401);
    // A link signed with the previous key (rotation) still opens a session.
    expect((await h().open(forge({ ...link, jti: randomBytes(16).toString('hex'), exp: now + 60_000 }, oldKey.id, oldKey.key))).status).toBe(200);

    // Cookies: forged, expired, and a link token used as a cookie, are all 401.
    const cookieFor = (v: string) => `__Host-hookline_portal=${v}`;
    const get = (cookie: string) => h().request('GET', '/api/endpoints', undefined, { cookie });
    expect((await get(cookieFor(forge({ t: 'session', sid: 'a', ws: wsB, ro: false, exp: now + 60_000 }, newKey.id, randomBytes(32))))).status).toBe(401);
    expect((await get(cookieFor(forge({ t: 'session', sid: 'a', ws: wsB, ro: false, exp: now - 1 }, newKey.id, newKey.key)))).status).toBe(401);
    expect((await get(cookieFor(forge({ ...link, exp: now + 60_000 }, newKey.id, newKey.key)))).status).toBe(401);
    expect((await get('')).status).toBe(401);
  });

  it('refuses to issue links for bad input over gRPC, with the field named', async () => {
    await expect(stack.portalRpc.createPortalSession({ workspaceId: '' })).rejects.toMatchObject({ codeName: 'INVALID_ARGUMENT', violations: [{ field: 'workspace_id' }] });
    await expect(stack.portalRpc.createPortalSession({ workspaceId: 'ws', ttl: { seconds: '5', nanos: 0 } })).rejects.toMatchObject({ violations: [{ field: 'ttl' }] });
    const r = await stack.portalRpc.createPortalSession({ workspaceId: 'ws_ok', ttl: { seconds: '120', nanos: 0 } });
    expect(r.url).toMatch(new RegExp(`^${stack.portalUrl}/#token=[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    expect(r.expireTime!.getTime()).toBeGreaterThan(Date.now());
  });

  it("scopes every call to the session's workspace: B's endpoint is not found from A", async () => {
    const a = await session(wsA);
    const b = await session(wsB);
    const created = await b.json<{ endpoint: { id: string } }>('POST', '/api/endpoints', { url: stack.receiver.url('/b'), description: 'B', requestId: 'rb1' });
    expect(created.status).toBe(200);
    const id = created.body.endpoint.id;
    expect((await b.json('GET', `/api/endpoints/${id}`)).status).toBe(200);
    for (const [method, path, body] of [
      ['GET', `/api/endpoints/${id}`, undefined],
      ['PATCH', `/api/endpoints/${id}`, { description: 'taken over' }],
      ['DELETE', `/api/endpoints/${id}`, undefined],
      ['POST', `/api/endpoints/${id}/rotate-secret`, { gracePeriodSeconds: 0 }],
      ['PUT', `/api/endpoints/${id}/subscription`, { subscription: { allEvents: true } }],
      ['POST', `/api/endpoints/${id}/test`, { eventType: 'invoice.paid' }],
    ] as const) {
      const r = await a.json<{ error: { code: string } }>(method, path, body);
      expect([method, path, r.status, r.body.error?.code]).toEqual([method, path, 404, 'not_found']);
    }
    expect((await a.json<{ endpoints: unknown[] }>('GET', '/api/endpoints')).body.endpoints).toEqual([]);
    // A query or body naming another workspace changes nothing: the scope is the session's.
    const sneaky = await a.json<{ endpoint: { id: string } }>('POST', '/api/endpoints', { url: stack.receiver.url('/a'), requestId: 'ra1', workspaceId: wsB });
    expect(sneaky.status).toBe(200);
    expect((await b.json<{ endpoints: { id: string }[] }>('GET', `/api/endpoints?workspaceId=${wsB}`)).body.endpoints.map((e) => e.id)).toEqual([id]);
    expect((await a.json('GET', `/api/endpoints/${id}?workspaceId=${wsB}`)).status).toBe(404);
    expect((await b.json('GET', `/api/endpoints/${id}`)).body).toMatchObject({ endpoint: { description: 'B' } });
  });

  it('refuses every write from a read-only session and lets it read', async () => {
    const writer = await session(wsA);
    const ep = (await writer.json<{ endpoint: { id: string } }>('POST', '/api/endpoints', { url: stack.receiver.url('/ro'), requestId: 'ro1' })).body.endpoint;
    const ro = await session(wsA, true);
    expect((await ro.json<{ readOnly: boolean }>('GET', '/api/session')).body.readOnly).toBe(true);
    expect((await ro.json('GET', `/api/endpoints/${ep.id}`)).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/api/endpoints', { url: stack.receiver.url('/x'), requestId: 'x' }],
      ['PATCH', `/api/endpoints/${ep.id}`, { enabled: false }],
      ['DELETE', `/api/endpoints/${ep.id}`, undefined],
      ['PUT', `/api/endpoints/${ep.id}/subscription`, { subscription: { allEvents: true } }],
      ['POST', `/api/endpoints/${ep.id}/rotate-secret`, {}],
      ['POST', `/api/endpoints/${ep.id}/test`, { eventType: 'invoice.paid' }],
      ['POST', `/api/endpoints/${ep.id}/deliveries/evt_x/retry`, undefined],
      ['POST', `/api/endpoints/${ep.id}/recover`, { since: new Date().toISOString() }],
    ] as const) {
      const r = await ro.json<{ error: { code: string } }>(method, path, body);
      expect([method, path, r.status, r.body.error?.code]).toEqual([method, path, 403, 'read_only']);
    }
    const after = (await writer.json<{ endpoint: { enabled: boolean } }>('GET', `/api/endpoints/${ep.id}`)).body.endpoint;
    expect(after.enabled).toBe(true);
    expect((await writer.json<{ endpoints: unknown[] }>('GET', '/api/endpoints')).body.endpoints.length).toBeGreaterThanOrEqual(1);
    expect(stack.receiver.on('/x')).toEqual([]);
  });

  it('pages through endpoints with opaque tokens', async () => {
    const ws = `ws_pages_${randomBytes(3).toString('hex')}`;
    const h = await session(ws);
    for (let i = 0; i < 3; i++) expect((await h.json('POST', '/api/endpoints', { url: stack.receiver.url(`/p${i}`), requestId: `p${i}` })).status).toBe(200);
    const seen: string[] = [];
    let token = '';
    for (let page = 0; page < 5; page++) {
      const r = await h.json<{ endpoints: { url: string }[]; nextPageToken: string }>('GET', `/api/endpoints?pageSize=2${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.endpoints.map((e) => e.url));
      token = r.body.nextPageToken;
      if (!token) break;
    }
    expect(seen).toEqual([0, 1, 2].map((i) => stack.receiver.url(`/p${i}`)));
  });

  it('refuses writes without the CSRF token, or with another session’s', async () => {
    const a = await session(wsA);
    const other = await session(wsA);
    const before = (await a.json<{ endpoints: unknown[] }>('GET', '/api/endpoints')).body.endpoints.length;
    const noToken = await a.request('POST', '/api/endpoints', { url: stack.receiver.url('/c'), requestId: 'c1' }, { csrf: false });
    expect(noToken.status).toBe(403);
    expect(((await noToken.json()) as { error: { code: string } }).error.code).toBe('csrf');
    const stolen = new PortalHttp(stack.portalUrl);
    stolen.cookie = a.cookie;
    stolen.csrf = other.csrf;
    expect((await stolen.request('POST', '/api/endpoints', { url: stack.receiver.url('/c'), requestId: 'c2' })).status).toBe(403);
    // A cross-site form post can only send text/plain or form bodies, without the header.
    expect((await a.request('POST', '/api/endpoints', 'url=https://x', { csrf: false, contentType: 'application/x-www-form-urlencoded' })).status).toBe(403);
    expect((await a.json<{ endpoints: unknown[] }>('GET', '/api/endpoints')).body.endpoints.length).toBe(before);
  });

  it('answers with CSP, X-Content-Type-Options, Referrer-Policy on pages, API and errors', async () => {
    for (const path of ['/', '/endpoints/new', '/theme.css', '/api/endpoints', '/api/nope']) {
      const res = await fetch(stack.portalUrl + path);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect([path, csp]).toEqual([path, expect.stringContaining("default-src 'none'")]);
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain('frame-ancestors https://app.example.com');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    }
    const api = await fetch(stack.portalUrl + '/api/endpoints');
    expect(api.headers.get('cache-control')).toBe('no-store');
  });

  it('turns bad input into a message on the field, never a crash', async () => {
    const a = await session(wsA);
    const cases: [string, string, unknown, string][] = [
      ['POST', '/api/endpoints', { url: 'http://example.com/hook', requestId: 'b1' }, 'url'],
      ['POST', '/api/endpoints', { url: 'https://10.1.2.3/hook', requestId: 'b2' }, 'url'],
      ['POST', '/api/endpoints', { url: `https://example.com/${'a'.repeat(3000)}`, requestId: 'b3' }, 'url'],
      ['POST', '/api/endpoints', { url: 42, requestId: 'b4' }, 'url'],
      ['POST', '/api/endpoints', { url: 'https://example.com/', description: 'd'.repeat(2000), requestId: 'b5' }, 'description'],
      ['POST', '/api/endpoints', '{not json', 'body'],
      ['POST', '/api/endpoints', [], 'body'],
      ['GET', '/api/endpoints?pageSize=-3', undefined, 'pageSize'],
    ];
    for (const [method, path, body, field] of cases) {
      const r = await a.json<{ error: { code: string; fields: { field: string; description: string }[] } }>(method, path, body);
      expect([path, r.status, r.body.error.code, r.body.error.fields[0]?.field]).toEqual([path, 400, 'invalid_argument', field]);
      expect(r.body.error.fields[0]!.description.length).toBeGreaterThan(3);
    }
    const ep = (await a.json<{ endpoint: { id: string } }>('POST', '/api/endpoints', { url: stack.receiver.url('/bad'), requestId: 'b6' })).body.endpoint;
    const empty = await a.json<{ error: { fields: { field: string }[] } }>('PUT', `/api/endpoints/${ep.id}/subscription`, { subscription: { eventTypes: [] } });
    expect(empty.status).toBe(400);
    expect(empty.body.error.fields[0]!.field).toMatch(/^subscription/);
    const unknownType = await a.json<{ error: { fields: { field: string }[] } }>('PUT', `/api/endpoints/${ep.id}/subscription`, { subscription: { eventTypes: ['no.such.type'] } });
    expect(unknownType.status).toBe(400);
    expect((await a.json('GET', '/api/endpoints/%00%01')).status).toBe(404);
    expect((await a.request('POST', '/api/endpoints', 'x'.repeat(70_000))).status).toBe(413);
    // Still up and answering.
    expect((await a.json('GET', '/api/endpoints')).status).toBe(200);
    expect(stack.portal.child.exitCode).toBeNull();
  });

  it('returns a secret in exactly one response per create or rotation, and logs none', async () => {
    const linkTok = await linkToken(stack, wsA);
    const a = new PortalHttp(stack.portalUrl);
    expect((await a.open(linkTok)).status).toBe(200);
    const bodies: string[] = [];
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await a.json(method, path, body);
      bodies.push(r.text);
      return r;
    };
    const created = await call('POST', '/api/endpoints', { url: stack.receiver.url('/s'), requestId: 's1' });
    const secret = (created.body as { secret: string }).secret;
    expect(secret).toMatch(/^whsec_/);
    const id = (created.body as { endpoint: { id: string } }).endpoint.id;
    await call('GET', `/api/endpoints/${id}`);
    await call('GET', '/api/endpoints');
    await call('PATCH', `/api/endpoints/${id}`, { description: 'x' });
    await call('PUT', `/api/endpoints/${id}/subscription`, { subscription: { eventTypes: ['invoice.paid'] } });
    await call('POST', `/api/endpoints/${id}/test`, { eventType: 'invoice.paid' });
    await call('GET', `/api/endpoints/${id}/attempts?kind=test`);
    const rotated = await call('POST', `/api/endpoints/${id}/rotate-secret`, { gracePeriodSeconds: 3600 });
    const secret2 = (rotated.body as { secret: string }).secret;
    expect(secret2).toMatch(/^whsec_/);
    expect(secret2).not.toBe(secret);
    await call('GET', `/api/endpoints/${id}`);
    expect(bodies.filter((b) => b.includes(secret))).toHaveLength(1);
    expect(bodies.filter((b) => b.includes(secret2))).toHaveLength(1);
    for (const s of stack.services) {
      expect([s.name, s.output().includes(secret)]).toEqual([s.name, false]);
      expect([s.name, s.output().includes(secret2)]).toEqual([s.name, false]);
      expect([s.name, s.output().includes(a.cookie.split('=')[1]!)]).toEqual([s.name, false]);
      expect([s.name, s.output().includes(a.csrf)]).toEqual([s.name, false]);
      expect([s.name, s.output().includes(linkTok.split('.')[2]!)]).toEqual([s.name, false]);
    }
  });
});

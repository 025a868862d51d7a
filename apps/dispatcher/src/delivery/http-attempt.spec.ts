// HttpAttempter against a plain HTTP server on loopback: what one attempt returns for answers,
// bodies over the limit, bodies cut short, and endpoints that never finish.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AllowList } from '@hookline/url-policy';
import { HttpAttempter } from './http-attempt';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

describe('HttpAttempter', () => {
  let server: Server;
  let base = '';
  let handler: Handler = (_req, res) => res.end('ok');
  const seen: { url: string; body: string }[] = [];
  const attempter = (timeoutMs = 2_000, bodyLimit = 64) =>
    new HttpAttempter({ allow: new AllowList(['127.0.0.1/32']), timeoutMs, bodyLimit, connectionsPerOrigin: 4 });
  const send = (h: HttpAttempter, path = '/hook') => h.send({ url: `${base}${path}`, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"a":1}') });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', body: Buffer.concat(chunks).toString() });
        handler(req, res, Buffer.concat(chunks));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  beforeEach(() => {
    seen.length = 0;
  });

  it('returns the status, the headers (repeated ones joined) and the body, and sends path and query as given', async () => {
    handler = (_req, res) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.writeHead(202, { 'x-one': 'yes' });
      res.end('accepted');
    };
    const h = attempter();
    const r = await send(h, '/hook/x?tenant=7&b=%20');
    await h.close();
    expect(r).toMatchObject({ kind: 'response', status: 202, body: 'accepted', bodyTruncated: false, resolvedIp: '127.0.0.1' });
    expect(r.kind === 'response' && r.headers).toMatchObject({ 'x-one': 'yes', 'set-cookie': 'a=1, b=2' });
    expect(seen).toEqual([{ url: '/hook/x?tenant=7&b=%20', body: '{"a":1}' }]);
  });

  it('keeps a body up to the limit and says it cut the rest', async () => {
    handler = (_req, res) => {
      res.writeHead(500);
      // Several writes, so the limit is crossed in the middle of the stream.
      for (let i = 0; i < 20; i++) res.write('0123456789');
      res.end();
    };
    const h = attempter(2_000, 64);
    const r = await send(h);
    // The cut connection is closed; the next attempt gets a new one.
    handler = (_req, res) => res.end('fine');
    const next = await send(h);
    await h.close();
    expect(r).toMatchObject({ kind: 'response', status: 500, bodyTruncated: true });
    expect(r.kind === 'response' && r.body).toBe('0123456789'.repeat(7).slice(0, 64));
    expect(next).toMatchObject({ kind: 'response', status: 200, body: 'fine', bodyTruncated: false });
  });

  it('reports a body cut short by the endpoint as a reset, not as an answer', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('only part of it');
      setTimeout(() => res.socket?.destroy(), 20);
    };
    const h = attempter();
    const r = await send(h);
    await h.close();
    expect(r).toMatchObject({ kind: 'error', refused: false });
    expect(r.kind === 'error' && r.error).toMatch(/connection reset|request failed/);
  });

  it('gives up at the budget when no answer comes', async () => {
    handler = () => undefined;
    const h = attempter(300);
    const r = await send(h);
    await h.close();
    expect(r).toMatchObject({ kind: 'error', error: 'timed out after 300 ms', refused: false });
    expect(r.durationMs).toBeGreaterThanOrEqual(250);
  });

  it('gives up at the budget when the body never ends', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('a trickle');
    };
    const h = attempter(300);
    const r = await send(h);
    await h.close();
    expect(r).toMatchObject({ kind: 'error', error: 'timed out after 300 ms' });
  });

  it('records the address of an IPv6 literal on answers and on errors alike', async () => {
    const v6 = createServer((req, res) => {
      req.resume();
      req.on('end', () => (req.url === '/drop' ? res.socket?.destroy() : res.end('v6')));
    });
    await new Promise<void>((r) => v6.listen(0, '::1', r));
    const url = `http://[::1]:${(v6.address() as AddressInfo).port}`;
    const h = new HttpAttempter({ allow: new AllowList(['::1/128']), timeoutMs: 2_000, bodyLimit: 64, connectionsPerOrigin: 4 });
    const answered = await h.send({ url: `${url}/ok`, headers: {}, body: Buffer.from('{}') });
    const dropped = await h.send({ url: `${url}/drop`, headers: {}, body: Buffer.from('{}') });
    await h.close();
    v6.closeAllConnections();
    await new Promise((r) => v6.close(r));
    expect(answered).toMatchObject({ kind: 'response', status: 200, body: 'v6', resolvedIp: '::1' });
    expect(dropped).toMatchObject({ kind: 'error', resolvedIp: '::1' });
  });

  it('refuses an address off the allow-list without connecting', async () => {
    const h = attempter();
    const r = await h.send({ url: base.replace('127.0.0.1', '127.0.0.2'), headers: {}, body: Buffer.from('{}') });
    await h.close();
    expect(r).toMatchObject({ kind: 'error', refused: true });
    expect(seen).toHaveLength(0);
  });
});

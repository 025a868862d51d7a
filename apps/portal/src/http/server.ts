// The browser-facing HTTP server: security headers on every answer, the built front end, and the
// JSON API. Every /api route but the session exchange needs a session; the workspace comes from it,
// never from the request. Writes also need the session's CSRF token and a writable session.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@hookline/service-kit';
import type { PortalConfig } from '../config';
import { badRequest, forbidden, HttpError, notFound, toHttpError, unauthenticated } from '../errors';
import type { SessionClaims, TokenSigner } from '../sessions/tokens';
import { CSRF_HEADER, readCookie, securityHeaders, SESSION_COOKIE } from './security';

export interface Session {
  claims: SessionClaims;
  kid: string;
}

export interface RequestContext {
  /** Only set for routes that need a session (all but the exchange). */
  session: Session;
  workspaceId: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, unknown>;
  /** For the exchange route: set the session cookie. */
  setCookie(value: string): void;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** e.g. /api/endpoints/:endpointId */
  pattern: string;
  /** false only for the exchange (it creates the session). */
  needsSession?: boolean;
  handler(ctx: RequestContext): Promise<unknown>;
}

type CompiledRoute = Route & { re: RegExp; names: string[] };

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const MAX_BODY = 64 * 1024;
const MIME: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.html': 'text/html; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.woff2': 'font/woff2' };

function compile(pattern: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const re = new RegExp(`^${pattern.replace(/:([A-Za-z]+)/g, (_, n: string) => (names.push(n), '([A-Za-z0-9_.:-]{1,200})'))}$`);
  return { re, names };
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'too_large', `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  if (size === 0) return {};
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'unsupported_media_type', 'send the request body as application/json');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('body', 'is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest('body', 'must be a JSON object');
  return v as Record<string, unknown>;
}

export class PortalHttpServer {
  private server: Server | undefined;
  private readonly routes: CompiledRoute[];
  private readonly headers: Record<string, string>;
  private indexHtml: Buffer | undefined;

  constructor(
    private readonly config: PortalConfig,
    private readonly signer: TokenSigner,
    routes: Route[],
    private readonly themeCss: string,
    private readonly log: Logger,
  ) {
    this.routes = routes.map((r) => ({ ...r, ...compile(r.pattern) }));
    this.headers = securityHeaders(config);
  }

  async listen(host: string, port: number): Promise<number> {
    const html = await readFile(path.join(this.config.webDir, 'index.html'), 'utf8').catch(() => undefined);
    // The configured theme on <html> from the first byte, so a dark portal never flashes light.
    this.indexHtml = html === undefined ? undefined : Buffer.from(html.replace('<html lang="en">', `<html lang="en" data-theme="${this.config.theme}">`));
    if (!this.indexHtml) this.log.warn({ webDir: this.config.webDir }, 'no built front end (index.html) found; run the build');
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.headersTimeout = 20_000;
    this.server.requestTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeIdleConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const data = Buffer.from(JSON.stringify(body ?? {}));
    res.writeHead(status, { ...this.headers, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(data.length), ...extra });
    res.end(data);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://portal.invalid');
    let routeName = 'static';
    try {
      if (url.pathname.startsWith('/api/')) {
        routeName = await this.api(req, res, url);
      } else {
        await this.static(req, res, url.pathname);
      }
    } catch (err) {
      const { status, body } = toHttpError(err, this.log);
      if (!res.headersSent) this.send(res, status, body);
      else res.destroy();
    } finally {
      // Method, route pattern and status only: never the query, the body, or a cookie.
      this.log.debug({ method: req.method, route: routeName, status: res.statusCode, ms: Date.now() - started }, 'http');
    }
  }

  private session(req: IncomingMessage): Session {
    const raw = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (!raw) throw unauthenticated();
    const v = this.signer.verifySession(raw);
    if (!v.ok) throw unauthenticated(v.reason === 'expired' ? 'the portal session has expired: open a new portal link' : 'the portal session is not valid: open a new portal link');
    return { claims: v.claims, kid: v.kid };
  }

  private async api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<string> {
    const method = req.method ?? 'GET';
    let match: { route: CompiledRoute; params: Record<string, string> } | undefined;
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.re.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      match = { route: r, params: Object.fromEntries(r.names.map((n, i) => [n, m[i + 1]!])) };
      break;
    }
    if (!match) {
      if (pathMatched) throw new HttpError(405, 'method_not_allowed', `${method} is not allowed here`);
      throw notFound('no such API route');
    }
    const { route, params } = match;
    let session: Session | undefined;
    if (route.needsSession !== false) {
      session = this.session(req);
      if (WRITE_METHODS.has(method)) {
        if (session.claims.ro) throw forbidden('read_only', 'this portal session is read-only');
        const csrf = req.headers[CSRF_HEADER];
        if (!this.signer.checkCsrf(session.claims, session.kid, typeof csrf === 'string' ? csrf : undefined)) throw forbidden('csrf', 'missing or wrong CSRF token: reload the page');
      }
    }
    const body = WRITE_METHODS.has(method) ? await readBody(req) : {};
    let cookie: string | undefined;
    const result = await route.handler({
      session: session!,
      workspaceId: session?.claims.ws ?? '',
      params,
      query: url.searchParams,
      body,
      setCookie: (v: string) => {
        cookie = v;
      },
    });
    this.send(res, 200, result ?? {}, cookie ? { 'set-cookie': cookie } : {});
    return `${method} ${route.pattern}`;
  }

  private async static(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method_not_allowed', 'only GET here');
    if (pathname === '/theme.css') {
      res.writeHead(200, { ...this.headers, 'content-type': 'text/css; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(this.themeCss);
      return;
    }
    if (pathname === '/healthz') {
      this.send(res, 200, { status: 'ok' });
      return;
    }
    if (pathname.startsWith('/assets/') || /^\/[\w.-]+\.(svg|png|ico)$/.test(pathname)) {
      const file = path.join(this.config.webDir, path.normalize(pathname).replace(/^(\.\.[/\\])+/, ''));
      if (!file.startsWith(this.config.webDir + path.sep)) throw notFound();
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) throw notFound('no such file');
      const data = await readFile(file);
      res.writeHead(200, { ...this.headers, 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream', 'cache-control': pathname.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : data);
      return;
    }
    // Every other path is a page of the single-page app.
    if (!this.indexHtml) throw new HttpError(503, 'unavailable', 'the portal front end is not built');
    res.writeHead(200, { ...this.headers, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : this.indexHtml);
  }
}

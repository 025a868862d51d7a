// One HTTP attempt with undici: SSRF-vetted connect, 10 s for everything, redirects never
// followed, response body read up to a limit. Returns a typed result; never throws for
// anything the endpoint or the network does.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, errors as undiciErrors } from 'undici';
import { addressRefusal, stripBrackets, type AllowList } from '@hookline/url-policy';

export interface HttpRequest {
  url: string;
  headers: Record<string, string>;
  body: Buffer;
}

export type HttpResult =
  | {
      kind: 'response';
      status: number;
      headers: Record<string, string>;
      body: string;
      bodyTruncated: boolean;
      durationMs: number;
      resolvedIp: string;
    }
  | { kind: 'error'; error: string; refused: boolean; durationMs: number; resolvedIp: string };

/** Resolves a host to every address (injectable so tests can stub DNS). */
export type Resolver = (host: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (host) =>
  new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));

/** The attempt's whole budget ran out (connect, request, response and body together). */
class BudgetExceeded extends Error {
  override name = 'TimeoutError';
}

interface Target {
  origin: string;
  /** Path and query, as sent. */
  path: string;
  /** As in the URL (IPv6 in brackets): the key of lastAddress. */
  hostname: string;
  /** Without brackets: what is vetted. */
  host: string;
}

/** Endpoint URLs whose parts are kept parsed, and hosts whose last address is kept. */
const MAX_TARGETS = 10_000;

class RefusedTarget extends Error {
  override name = 'RefusedTarget';
  readonly code = 'EHOOKLINE_REFUSED';
}

export interface HttpAttempterOptions {
  allow: AllowList;
  timeoutMs: number;
  bodyLimit: number;
  connectionsPerOrigin: number;
  resolver?: Resolver;
  /** Extra CA certificates (PEM) to trust besides the system store. */
  ca?: string[];
}

export class HttpAttempter {
  private readonly agent: Agent;
  /** Address each host was last connected to, for the attempt record. */
  private readonly lastAddress = new Map<string, string>();
  private readonly resolver: Resolver;
  private readonly targets = new Map<string, Target>();

  constructor(private readonly opts: HttpAttempterOptions) {
    this.resolver = opts.resolver ?? systemResolver;
    this.agent = new Agent({
      connections: opts.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      connect: {
        timeout: opts.timeoutMs,
        // Resolve once, refuse if ANY address is non-public (a name that also points inside is
        // hostile), and hand net.connect only the vetted address.
        lookup: ((hostname, options, callback) => {
          this.vet(hostname).then(
            (addr) => {
              this.remember(hostname, addr.address);
              if (options.all) callback(null, [addr]);
              else callback(null, addr.address, addr.family);
            },
            (err: unknown) => callback(err as NodeJS.ErrnoException, '', 0),
          );
        }) as LookupFunction,
        ...(opts.ca ? { ca: opts.ca } : {}),
      },
    });
  }

  private async vet(hostname: string): Promise<LookupAddress> {
    const host = stripBrackets(hostname);
    const family = isIP(host);
    const addrs = family ? [{ address: host, family }] : await this.resolver(host);
    if (addrs.length === 0) throw new RefusedTarget(`${host} has no addresses`);
    for (const a of addrs) {
      const why = addressRefusal(a.address, this.opts.allow);
      if (why) throw new RefusedTarget(`refused target ${host}: ${why}`);
    }
    return addrs[0]!;
  }

  async send(req: HttpRequest): Promise<HttpResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let hostname = '';
    // One timer per attempt, cleared when it ends: AbortSignal.timeout() keeps each attempt's
    // signal and timer alive for the whole budget (10 s × thousands of attempts a second).
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new BudgetExceeded()), this.opts.timeoutMs);
    try {
      const target = this.target(req.url);
      hostname = target.hostname;
      // IP literals never reach the lookup hook: vet them here.
      if (isIP(target.host)) {
        await this.vet(target.host);
        this.remember(target.hostname, target.host);
      }
      // The origin and path as parsed once per URL: request(url) would parse it again.
      const res = await this.agent.request({
        origin: target.origin,
        path: target.path,
        method: 'POST',
        headers: req.headers,
        body: req.body,
        signal: abort.signal,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
      });
      const { text, truncated } = await readLimited(res.body, this.opts.bodyLimit);
      const headers: Record<string, string> = {};
      for (const k in res.headers) {
        const v = res.headers[k];
        if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      }
      return { kind: 'response', status: res.statusCode, headers, body: text, bodyTruncated: truncated, durationMs: elapsed(), resolvedIp: this.lastAddress.get(target.hostname) ?? '' };
    } catch (err) {
      return { kind: 'error', error: describe(err, this.opts.timeoutMs), refused: isRefused(err), durationMs: elapsed(), resolvedIp: this.lastAddress.get(hostname) ?? '' };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The address a host was connected to last (bounded like the parsed URLs). */
  private remember(hostname: string, address: string): void {
    if (this.lastAddress.size >= MAX_TARGETS && !this.lastAddress.has(hostname)) this.lastAddress.clear();
    this.lastAddress.set(hostname, address);
  }

  /** An endpoint URL's parts, parsed once (endpoints are few, their attempts many). */
  private target(url: string): Target {
    let t = this.targets.get(url);
    if (!t) {
      const u = new URL(url);
      t = { origin: u.origin, path: `${u.pathname}${u.search}`, hostname: u.hostname, host: stripBrackets(u.hostname) };
      // Bounded: a registry with more endpoints than this simply parses again.
      if (this.targets.size >= MAX_TARGETS) this.targets.clear();
      this.targets.set(url, t);
    }
    return t;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** Reads a response body up to `limit` bytes (the rest is not read: not worth the time or memory). */
function readLimited(body: NodeJS.ReadableStream & { destroy(): void }, limit: number): Promise<{ text: string; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: { text: string; truncated: boolean } | Error) => {
      if (done) return;
      done = true;
      body.off('data', onData);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        finish({ text: Buffer.concat(chunks).subarray(0, limit).toString('utf8'), truncated: true });
        body.destroy();
      }
    };
    body.on('data', onData);
    body.once('end', () => finish({ text: chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'), truncated: false }));
    // After finish() these only end the stream's life: errors are then nobody's.
    body.on('error', (err: Error) => finish(err));
    // Every body closes, after its end too: an Error (a stack trace) only when it was cut short.
    body.once('close', () => {
      if (!done) finish(Object.assign(new Error('response body ended early'), { code: 'ECONNRESET' }));
    });
  });
}

/** Error-like without `instanceof Error`: an abort's DOMException may come from another realm (vm contexts, jest). */
type ErrorLike = { name?: string; message?: string; code?: string; cause?: unknown };
const isErrorLike = (e: unknown): e is ErrorLike => typeof e === 'object' && e !== null;

function isRefused(err: unknown): boolean {
  for (let e: unknown = err, i = 0; isErrorLike(e) && i < 5; e = e.cause, i++) if (e instanceof RefusedTarget) return true;
  return false;
}

/** A short, secret-free reason for the attempt log. */
function describe(err: unknown, timeoutMs: number): string {
  for (let e: unknown = err, i = 0; isErrorLike(e) && i < 5; e = e.cause, i++) {
    if (e instanceof RefusedTarget) return e.message;
    if (e.name === 'TimeoutError' || e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError || e instanceof undiciErrors.ConnectTimeoutError) {
      return `timed out after ${timeoutMs} ms`;
    }
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (code === 'ECONNREFUSED') return 'connection refused';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host name could not be resolved';
    if (code === 'ECONNRESET' || e instanceof undiciErrors.SocketError) return 'connection reset by the endpoint';
    if (code && /CERT|SSL|TLS|ERR_TLS/.test(code)) return `TLS error (${code})`;
  }
  return isErrorLike(err) && typeof err.message === 'string' ? `request failed: ${err.message.slice(0, 200)}` : 'request failed';
}

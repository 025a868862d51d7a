// A real HTTPS webhook receiver for tests: records every request (headers and raw body) and
// answers with whatever the test sets: a status, a delay, a body, extra headers.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestPki } from './tls';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  receivedAt: number;
}

export interface ReceiverBehaviour {
  status: number;
  delayMs?: number;
  body?: string;
  headers?: Record<string, string>;
}

export class TestReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Per-path behaviour; paths not listed get `fallback`. */
  readonly behaviour = new Map<string, ReceiverBehaviour | ((req: ReceivedRequest) => ReceiverBehaviour)>();
  fallback: ReceiverBehaviour = { status: 200, body: 'ok' };
  private server: Server | undefined;
  port = 0;

  constructor(private readonly pki: TestPki) {}

  async start(): Promise<void> {
    this.server = createServer({ cert: this.pki.cert, key: this.pki.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
        const path = (req.url ?? '/').split('?')[0]!;
        const recorded: ReceivedRequest = { method: req.method ?? '', path, headers, body: Buffer.concat(chunks), receivedAt: Date.now() };
        this.requests.push(recorded);
        const b = this.behaviour.get(path) ?? this.fallback;
        const behaviour = typeof b === 'function' ? b(recorded) : b;
        const answer = () => {
          if (res.destroyed) return;
          res.writeHead(behaviour.status, { 'content-type': 'text/plain', ...(behaviour.headers ?? {}) });
          res.end(behaviour.body ?? '');
        };
        if (behaviour.delayMs) setTimeout(answer, behaviour.delayMs).unref();
        else answer();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  url(path = '/hook'): string {
    return `https://localhost:${this.port}${path}`;
  }

  on(path: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

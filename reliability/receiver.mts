// The HTTPS webhook receiver of the fault suite: one server, one path per endpoint. It records
// every request's X-Webhook-Id, checks X-Signature-256, and answers per path with whatever the
// running scenario says (status, delay). A delivery counts only when a 2xx answer was actually
// written out (`finish`): a request the dispatcher abandoned (timeout) is not a delivery.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface Behaviour {
  status: number;
  delayMs: number;
  /** This share of requests (0-100, chosen at random) answers 500 instead of `status`. */
  failPercent?: number;
}

export interface Delivered {
  /** First 2xx answer written for this (endpoint path, event id). */
  firstAt: number;
  /** 2xx answers written in all (1 = no duplicate). */
  count: number;
}

export class RecordingReceiver {
  private server: Server | undefined;
  port = 0;
  /** path → endpoint secret (for signature checks). */
  readonly secrets = new Map<string, string>();
  /** path → behaviour; a function of the path so a scenario can switch phases in one place. */
  behaviourFor: (path: string) => Behaviour = () => ({ status: 200, delayMs: 0 });
  /** `${path} ${eventId}` → delivery record. */
  readonly delivered = new Map<string, Delivered>();
  /** eventId → rid (the run-unique id every payload of the suite carries). */
  readonly ridOf = new Map<string, string>();
  /** rid → event ids seen for it (one, unless an event was published twice under two ids). */
  readonly idsOfRid = new Map<string, Set<string>>();
  /** Called on the first 2xx of each (path, event id) (throughput counters). */
  onFirstDelivery: ((path: string) => void) | undefined;
  requests = 0;
  badSignatures = 0;
  readonly badSignatureSamples: string[] = [];
  readonly statusCounts = new Map<number, number>();
  abandoned = 0;

  private readonly tls: { cert: string; key: string };
  constructor(tls: { cert: string; key: string }) {
    this.tls = tls;
  }

  async start(): Promise<void> {
    this.server = createServer({ cert: this.tls.cert, key: this.tls.key, keepAliveTimeout: 30_000 }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        const body = Buffer.concat(chunks);
        const path = (req.url ?? '/').split('?')[0]!;
        const id = String(req.headers['x-webhook-id'] ?? '');
        const secret = this.secrets.get(path);
        if (secret !== undefined && !validSignature(body, secret, String(req.headers['x-signature-256'] ?? ''))) {
          this.badSignatures++;
          if (this.badSignatureSamples.length < 5) this.badSignatureSamples.push(`${path} ${id}`);
        }
        try {
          const rid = (JSON.parse(body.toString('utf8')) as { data?: { rid?: unknown } }).data?.rid;
          if (typeof rid === 'string' && id) {
            this.ridOf.set(id, rid);
            let ids = this.idsOfRid.get(rid);
            if (!ids) this.idsOfRid.set(rid, (ids = new Set()));
            ids.add(id);
          }
        } catch {
          /* not ours: counted by id only */
        }
        const chosen = this.behaviourFor(path);
        const b = chosen.failPercent && Math.random() * 100 < chosen.failPercent ? { status: 500, delayMs: chosen.delayMs } : chosen;
        const answer = () => {
          if (res.destroyed) {
            this.abandoned++;
            return;
          }
          res.writeHead(b.status, { 'content-type': 'text/plain' });
          res.end(b.status >= 200 && b.status < 300 ? 'ok' : 'nope');
        };
        res.on('finish', () => {
          this.statusCounts.set(b.status, (this.statusCounts.get(b.status) ?? 0) + 1);
          if (b.status < 200 || b.status >= 300 || !id) return;
          const key = `${path} ${id}`;
          const d = this.delivered.get(key);
          if (d) d.count++;
          else {
            this.delivered.set(key, { firstAt: Date.now(), count: 1 });
            this.onFirstDelivery?.(path);
          }
        });
        if (b.delayMs > 0) setTimeout(answer, b.delayMs).unref();
        else answer();
      });
    });
    this.server.on('clientError', () => undefined);
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `https://localhost:${this.port}${path}`;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

/** The product guide's check: sha256=<hex HMAC-SHA256 of the raw body keyed with the whole secret>. */
function validSignature(body: Buffer, secret: string, header: string): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const got = Buffer.from(header);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

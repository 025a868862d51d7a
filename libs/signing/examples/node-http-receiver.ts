// A Hookline webhook receiver with nothing but Node's http server and @hookline/signing.
// Run (after compiling with tsc): HOOKLINE_SECRET=whsec_... PORT=3000 node node-http-receiver.js
//
// The one rule: verify the raw bytes as they arrived, before any JSON parsing.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { verify } from '@hookline/signing';

export interface ReceiverOptions {
  /** The endpoint's secret; during a rotation, the new and the old one. */
  secrets: string | string[];
  /** 0 picks a free port. @default 3000 */
  port?: number;
  /** @default 127.0.0.1 */
  host?: string;
  /** Serve HTTPS with this key and certificate (Hookline delivers only to HTTPS URLs). */
  tls?: { key: string; cert: string };
  /** Called once per verified event (retries of the same X-Webhook-Id are acknowledged, not repeated). */
  onEvent?: (event: { id: string; type: string; created_at: string; data: unknown }) => void;
}

export interface RunningReceiver {
  port: number;
  url: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;

export async function startNodeHttpReceiver(options: ReceiverOptions): Promise<RunningReceiver> {
  const seen = new Set<string>(); // use a database with a unique index in production

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST') return reply(res, 405, { error: 'POST only' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      const result = verify(rawBody, options.secrets, req.headers);
      if (!result.ok) return reply(res, 401, { error: 'bad signature', reason: result.reason });
      const event = JSON.parse(rawBody.toString('utf8')) as { id: string; type: string; created_at: string; data: unknown };
      if (!seen.has(event.id)) {
        seen.add(event.id);
        options.onEvent?.(event);
      }
      // Answer 2xx quickly (Hookline waits at most 10 s); do slow work after answering.
      reply(res, 200, { received: event.id, scheme: result.scheme });
    });
  };

  const server: Server = options.tls ? createHttpsServer(options.tls, handle) : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(options.port ?? 3000, options.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `${options.tls ? 'https' : 'http'}://localhost:${port}/webhooks`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function reply(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

if (require.main === module) {
  const secret = process.env.HOOKLINE_SECRET;
  if (!secret) throw new Error('set HOOKLINE_SECRET to the endpoint secret');
  void startNodeHttpReceiver({ secrets: secret, port: Number(process.env.PORT ?? 3000), onEvent: (e) => console.log(`${e.type} ${e.id}`) }).then((r) =>
    console.log(`listening on ${r.url}`),
  );
}

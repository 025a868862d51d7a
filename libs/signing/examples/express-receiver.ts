// A Hookline webhook receiver with Express 5 and @hookline/signing.
// Run (after compiling with tsc): HOOKLINE_SECRET=whsec_... PORT=3000 node express-receiver.js
//
// The one rule: verify the raw bytes as they arrived. express.raw() keeps them as a Buffer;
// express.json() on this route would parse them and the signature could no longer be checked.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
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

export function webhookApp(options: Pick<ReceiverOptions, 'secrets' | 'onEvent'>): express.Express {
  const seen = new Set<string>(); // use a database with a unique index in production
  const app = express();
  app.post('/webhooks', express.raw({ type: '*/*', limit: '1mb' }), (req, res) => {
    const rawBody: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const result = verify(rawBody, options.secrets, req.headers);
    if (!result.ok) {
      res.status(401).json({ error: 'bad signature', reason: result.reason });
      return;
    }
    const event = JSON.parse(rawBody.toString('utf8')) as { id: string; type: string; created_at: string; data: unknown };
    if (!seen.has(event.id)) {
      seen.add(event.id);
      options.onEvent?.(event);
    }
    // Answer 2xx quickly (Hookline waits at most 10 s); do slow work after answering.
    res.status(200).json({ received: event.id, scheme: result.scheme });
  });
  // Other routes may use express.json() as usual.
  return app;
}

export async function startExpressReceiver(options: ReceiverOptions): Promise<RunningReceiver> {
  const app = webhookApp(options);
  const server: Server = options.tls ? createHttpsServer(options.tls, app) : createHttpServer(app);
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

if (require.main === module) {
  const secret = process.env.HOOKLINE_SECRET;
  if (!secret) throw new Error('set HOOKLINE_SECRET to the endpoint secret');
  void startExpressReceiver({ secrets: secret, port: Number(process.env.PORT ?? 3000), onEvent: (e) => console.log(`${e.type} ${e.id}`) }).then((r) =>
    console.log(`listening on ${r.url}`),
  );
}

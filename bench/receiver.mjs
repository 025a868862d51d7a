// Benchmark receiver, in its own process so its CPU is not the harness's: an HTTPS server that
// answers at once (200, or the status set for a workspace), counts requests, and records
// publish-to-delivery latency from the body's created_at. Requests are counted per workspace (the
// first path segment), so a phase never counts another phase's late deliveries. Controlled over
// IPC: {cmd:'stats', workspace} → {count, ok, unique, firstOkAt, lastOkAt, latencies},
// {cmd:'reset', latencyWorkspace (one or a list), keepCounts}, {cmd:'status', workspace, status}.
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';

/** Per workspace: requests, 2xx answers, distinct (endpoint, X-Webhook-Id) answered 2xx, first and last 2xx time. */
const counts = new Map();
const statusOf = new Map();
let latencies = [];
let latencyWorkspaces = new Set();

const of = (ws) => {
  let c = counts.get(ws);
  if (!c) counts.set(ws, (c = { count: 0, ok: 0, seen: new Set(), firstOkAt: 0, lastOkAt: 0 }));
  return c;
};

const server = createServer({ cert: readFileSync(process.env.CERT_FILE), key: readFileSync(process.env.KEY_FILE), keepAliveTimeout: 60_000 }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const ws = (req.url ?? '').split('/')[1] ?? '';
    const c = of(ws);
    c.count++;
    const status = statusOf.get(ws) ?? 200;
    if (status >= 200 && status < 300) {
      const now = Date.now();
      c.ok++;
      c.seen.add(`${req.url} ${req.headers['x-webhook-id']}`);
      c.firstOkAt ||= now;
      c.lastOkAt = now;
      if (latencyWorkspaces.has(ws)) {
        const m = /"created_at":"([^"]+)"/.exec(Buffer.concat(chunks).toString('utf8', 0, 200));
        if (m) latencies.push(now - Date.parse(m[1]));
      }
    }
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(status < 300 ? 'ok' : 'unavailable');
  });
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
// The harness gone (killed, or crashed) means nobody will ask for `exit`: do not linger.
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  if (m.cmd === 'stats') {
    const list = m.workspace === undefined ? [...counts.values()] : [of(m.workspace)];
    const sum = (k) => list.reduce((a, c) => a + c[k], 0);
    process.send({
      count: sum('count'),
      ok: sum('ok'),
      unique: list.reduce((a, c) => a + c.seen.size, 0),
      firstOkAt: Math.min(...list.map((c) => c.firstOkAt || Infinity)),
      lastOkAt: Math.max(0, ...list.map((c) => c.lastOkAt)),
      latencies: m.withLatencies ? latencies : [],
    });
  }
  if (m.cmd === 'reset') {
    if (!m.keepCounts) counts.clear();
    latencies = [];
    latencyWorkspaces = new Set([m.latencyWorkspace ?? ''].flat());
  }
  if (m.cmd === 'status') statusOf.set(m.workspace, m.status);
  if (m.cmd === 'exit') server.close(() => process.exit(0));
});

// Benchmark receiver, in its own process so its CPU is not the harness's: an HTTPS server that
// answers 200 at once, counts requests, and records publish-to-delivery latency from the body's
// created_at. Requests are counted per workspace (the first path segment), so a phase never
// counts another phase's late deliveries. Controlled over IPC: {cmd:'stats', workspace} →
// {count, latencies}, {cmd:'reset', latencyWorkspace}.
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';

const server = createServer({ cert: readFileSync(process.env.CERT_FILE), key: readFileSync(process.env.KEY_FILE), keepAliveTimeout: 60_000 }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const ws = (req.url ?? '').split('/')[1] ?? '';
    counts.set(ws, (counts.get(ws) ?? 0) + 1);
    if (ws === latencyWorkspace) {
      const m = /"created_at":"([^"]+)"/.exec(Buffer.concat(chunks).toString('utf8', 0, 200));
      if (m) latencies.push(Date.now() - Date.parse(m[1]));
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
const counts = new Map();
let latencies = [];
let latencyWorkspace = '';
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (m) => {
  if (m.cmd === 'stats') process.send({ count: m.workspace === undefined ? [...counts.values()].reduce((a, b) => a + b, 0) : (counts.get(m.workspace) ?? 0), latencies: m.withLatencies ? latencies : [] });
  if (m.cmd === 'reset') {
    counts.clear();
    latencies = [];
    latencyWorkspace = m.latencyWorkspace ?? '';
  }
  if (m.cmd === 'exit') server.close(() => process.exit(0));
});

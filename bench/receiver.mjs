// Benchmark receiver, in its own process so its CPU is not the harness's: an HTTPS server that
// answers 200 at once, counts requests, and records publish-to-delivery latency from the body's
// created_at. Controlled over IPC: {cmd:'stats'} → {count, latencies}, {cmd:'reset'}.
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';

const server = createServer({ cert: readFileSync(process.env.CERT_FILE), key: readFileSync(process.env.KEY_FILE), keepAliveTimeout: 60_000 }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    count++;
    if (recordLatency) {
      const m = /"created_at":"([^"]+)"/.exec(Buffer.concat(chunks).toString('utf8', 0, 200));
      if (m) latencies.push(Date.now() - Date.parse(m[1]));
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
let count = 0;
let latencies = [];
let recordLatency = false;
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (m) => {
  if (m.cmd === 'stats') process.send({ count, latencies: m.withLatencies ? latencies : [] });
  if (m.cmd === 'reset') {
    count = 0;
    latencies = [];
    recordLatency = Boolean(m.recordLatency);
  }
  if (m.cmd === 'exit') server.close(() => process.exit(0));
});

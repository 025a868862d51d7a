#!/usr/bin/env node
// Protocol-level health probe for the local infra, with no npm dependencies
// (it has to work before `npm install` and outside the workspace).
//
//   node probe.mjs kafka 127.0.0.1 19092   -> exit 0 if a Metadata request
//                                              lists at least one live broker
//   node probe.mjs mongo 127.0.0.1 27027   -> exit 0 if {ping: 1} returns ok: 1
//
// An open TCP port proves little for either server: Kafka binds its listener
// before the broker has caught up with the KRaft metadata log and been
// unfenced, and a half-started FerretDB can accept and then drop connections.
// A real request is the only honest readiness signal.
import net from 'node:net';

const [kind, host = '127.0.0.1', portArg, timeoutArg = '3000'] = process.argv.slice(2);
const port = Number(portArg);
const timeoutMs = Number(timeoutArg);

function request(payload) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const chunks = [];
    let got = 0;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('timeout')); }, timeoutMs);
    sock.on('connect', () => sock.write(payload));
    sock.on('data', (d) => {
      chunks.push(d);
      got += d.length;
      const buf = Buffer.concat(chunks, got);
      // Both protocols start each frame with an int32 length; Kafka's excludes
      // the length field itself, Mongo's includes it.
      if (buf.length >= 4) {
        const need = kind === 'kafka' ? buf.readInt32BE(0) + 4 : buf.readInt32LE(0);
        if (buf.length >= need) {
          clearTimeout(timer);
          sock.end();
          resolve(buf.subarray(0, need));
        }
      }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', () => { clearTimeout(timer); reject(new Error('connection closed')); });
  });
}

// Metadata for zero topics: the cheapest request whose answer depends on the
// broker being registered and unfenced (fenced brokers are not listed).
// v4 is the newest non-flexible version and, per KIP-896, the oldest one
// Kafka intends to keep long-term (4.x still accepts v0-v3 only as a
// concession to old clients).
async function kafka() {
  const clientId = Buffer.from('hookline-probe');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1);
  let o = 0;
  o = body.writeInt16BE(3, o); // api_key = Metadata
  o = body.writeInt16BE(4, o); // api_version
  o = body.writeInt32BE(1, o); // correlation_id
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  o = body.writeInt32BE(0, o); // topics: empty array (not null, which means "all")
  body.writeInt8(0, o); // allow_auto_topic_creation = false
  const frame = Buffer.concat([Buffer.alloc(4), body]);
  frame.writeInt32BE(body.length, 0);

  const res = await request(frame);
  let p = 4;
  if (res.readInt32BE(p) !== 1) throw new Error('bad correlation id');
  p += 4 + 4; // correlation_id, throttle_time_ms
  const brokers = res.readInt32BE(p);
  if (brokers < 1) throw new Error('no live brokers in metadata');
  return `${brokers} broker(s)`;
}

function bsonDoc(fields) {
  const parts = [];
  for (const [k, v] of Object.entries(fields)) {
    const key = Buffer.from(`${k}\0`);
    if (typeof v === 'number') {
      const b = Buffer.alloc(4); b.writeInt32LE(v);
      parts.push(Buffer.from([0x10]), key, b);
    } else {
      const s = Buffer.from(`${v}\0`);
      const len = Buffer.alloc(4); len.writeInt32LE(s.length);
      parts.push(Buffer.from([0x02]), key, len, s);
    }
  }
  const inner = Buffer.concat([...parts, Buffer.from([0])]);
  const len = Buffer.alloc(4); len.writeInt32LE(inner.length + 4);
  return Buffer.concat([len, inner]);
}

// Read the top-level numeric "ok" field of a BSON document (just enough of
// BSON to walk past the fields a hello/ping reply may carry).
function bsonOk(doc) {
  const fixed = { 0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0a: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16 };
  let p = 4;
  while (p < doc.length - 1) {
    const type = doc[p++];
    const end = doc.indexOf(0, p);
    const name = doc.toString('utf8', p, end);
    p = end + 1;
    if (name === 'ok') {
      if (type === 0x01) return doc.readDoubleLE(p);
      if (type === 0x10) return doc.readInt32LE(p);
      if (type === 0x12) return Number(doc.readBigInt64LE(p));
      return NaN;
    }
    if (type in fixed) p += fixed[type];
    else if (type === 0x02 || type === 0x0d || type === 0x0e) p += 4 + doc.readInt32LE(p);
    else if (type === 0x03 || type === 0x04) p += doc.readInt32LE(p);
    else if (type === 0x05) p += 5 + doc.readInt32LE(p);
    else throw new Error(`unsupported BSON type 0x${type.toString(16)}`);
  }
  return NaN;
}

async function mongo() {
  const doc = bsonDoc({ ping: 1, $db: 'admin' });
  const header = Buffer.alloc(16 + 4 + 1);
  header.writeInt32LE(header.length + doc.length, 0); // messageLength
  header.writeInt32LE(1, 4); // requestID
  header.writeInt32LE(0, 8); // responseTo
  header.writeInt32LE(2013, 12); // OP_MSG
  header.writeUInt32LE(0, 16); // flagBits
  header.writeUInt8(0, 20); // section kind 0: body
  const res = await request(Buffer.concat([header, doc]));
  if (res.readInt32LE(12) !== 2013) throw new Error('unexpected reply opcode');
  const ok = bsonOk(res.subarray(21));
  if (ok !== 1) throw new Error(`ping returned ok=${ok}`);
  return 'ping ok';
}

const probes = { kafka, mongo };
if (!probes[kind] || !Number.isInteger(port)) {
  console.error('usage: probe.mjs kafka|mongo HOST PORT [TIMEOUT_MS]');
  process.exit(64);
}
probes[kind]().then(
  (msg) => { console.log(`${kind} ${host}:${port}: ${msg}`); process.exit(0); },
  (err) => { console.error(`${kind} ${host}:${port}: ${err.message}`); process.exit(1); },
);

// Malformed input at scale: hand-encoded gRPC requests (so they can be wrong at the protobuf
// level: wrong wire types, truncation, invalid UTF-8 in strings, unknown enum values, huge
// fields) and Kafka ingest records (missing/duplicate/invalid headers, bad JSON, invalid UTF-8,
// oversize, unknown types), interleaved with valid ones. Each category has the status code (or
// DLQ code) it must get; valid items must be delivered; every malformed Kafka record must be in
// the DLQ; no process may crash.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import kafkajs from 'kafkajs';
import { eventsV1 } from '@hookline/proto';
import type { Ack } from './publisher.mts';
import type { Ctx } from './suite.mts';
import { clientCredentials, sleep } from './stack.mts';

const { Kafka, logLevel } = kafkajs;

// ---- protobuf by hand ------------------------------------------------------------------------
function varint(n: number): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  while (v > 127n) {
    out.push(Number(v & 127n) | 128);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}
const lenField = (no: number, data: Buffer | string) => {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([varint((no << 3) | 2), varint(b.length), b]);
};
const intField = (no: number, v: number) => Buffer.concat([varint(no << 3), varint(v)]);

interface EventFields {
  ws?: Buffer | string;
  type?: Buffer | string;
  payload?: Buffer | string;
  key?: Buffer | string;
}
function eventInput(f: EventFields): Buffer {
  const parts: Buffer[] = [];
  if (f.ws !== undefined) parts.push(lenField(1, f.ws));
  if (f.type !== undefined) parts.push(lenField(2, f.type));
  if (f.payload !== undefined) parts.push(lenField(3, f.payload));
  if (f.key !== undefined) parts.push(lenField(4, f.key));
  return Buffer.concat(parts);
}

const INVALID_UTF8 = Buffer.from([0x7b, 0x22, 0x72, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]); // {"rid":"<bad>"}
const OK = 'OK';

interface GrpcCase {
  name: string;
  method: string;
  expect: string[];
  build: (i: number) => { body: Buffer; rid?: string; ws?: string };
}

export interface MalformedInput {
  ctx: Ctx;
  grpcCount: number;
  kafkaCount: number;
  eventType: string;
  prefix: string;
  kafkaBrokers: string;
  ingestAddress: string;
  registryAddress: string;
  dispatcherAddress: string;
  log: (m: string) => void;
}

export interface MalformedResult {
  lines: string[];
  problems: string[];
  published: number;
  acked: Map<string, Ack>;
  wsOfRid: Map<string, string>;
  /** rid → workspace id of valid Kafka records. */
  kafkaValid: Map<string, string>;
}

export async function runMalformed(input: MalformedInput): Promise<MalformedResult> {
  const { ctx, eventType, log } = input;
  const problems: string[] = [];
  const lines: string[] = [];
  const acked = new Map<string, Ack>();
  const wsOfRid = new Map<string, string>();
  let published = 0;
  const wsIds = ctx.workspaces.map((w) => w.id);
  const pickWs = (i: number) => wsIds[i % wsIds.length]!;
  const validPayload = (rid: string, i: number) => JSON.stringify({ rid, n: i });
  const INGEST = '/webhooks.events.v1.EventIngestService/';

  const grpcCases: GrpcCase[] = [
    {
      name: 'valid PublishEvent',
      method: `${INGEST}PublishEvent`,
      expect: [OK],
      build: (i) => {
        const rid = `malformed-g${i}`;
        const ws = pickWs(i / 4);
        return { rid, ws, body: lenField(1, eventInput({ ws, type: eventType, payload: validPayload(rid, i), key: `key-${rid}` })) };
      },
    },
    { name: 'payload not JSON', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: '{"rid": "x", n: ' })) }) },
    { name: 'payload invalid UTF-8', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: INVALID_UTF8 })) }) },
    { name: 'payload 300 KiB', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: JSON.stringify({ rid: 'big', n: i, pad: 'x'.repeat(300 * 1024) }) })) }) },
    { name: 'payload empty', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType })) }) },
    { name: 'payload wrong JSON types', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: JSON.stringify({ rid: 7, n: 'seven' }) })) }) },
    { name: 'payload not an object', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: ['42', 'null', '"s"', '[1,2]'][i % 4]! })) }) },
    { name: 'workspace_id 100 KiB', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: 'w'.repeat(100 * 1024), type: eventType, payload: validPayload('x', i) })) }) },
    { name: 'workspace_id invalid UTF-8', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: Buffer.concat([Buffer.from('ws_'), Buffer.from([0xc3, 0x28, 0xff])]), type: eventType, payload: validPayload('x', i) })) }) },
    { name: 'workspace_id missing', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ type: eventType, payload: validPayload('x', i) })) }) },
    { name: 'event_type unknown', method: `${INGEST}PublishEvent`, expect: ['NOT_FOUND'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: `rel.unknown_${i % 7}`, payload: validPayload('x', i) })) }) },
    { name: 'event_type malformed', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: ['Bad Type!', '', '..', 'x'.repeat(5000)][i % 4]!, payload: validPayload('x', i) })) }) },
    { name: 'idempotency_key 300 chars', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: validPayload('x', i), key: 'k'.repeat(300) })) }) },
    { name: 'event missing', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: () => ({ body: Buffer.alloc(0) }) },
    { name: 'wrong wire type (event as varint)', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: intField(1, 12345 + i) }) },
    {
      name: 'wrong wire type (workspace_id as varint)',
      method: `${INGEST}PublishEvent`,
      expect: ['INVALID_ARGUMENT'],
      build: (i) => ({ body: lenField(1, Buffer.concat([intField(1, 99), lenField(2, eventType), lenField(3, validPayload('x', i))])) }),
    },
    {
      name: 'truncated protobuf',
      method: `${INGEST}PublishEvent`,
      expect: ['INVALID_ARGUMENT'],
      build: (i) => {
        const full = lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: validPayload('x', i) }));
        return { body: full.subarray(0, Math.max(3, full.length - 5)) };
      },
    },
    { name: 'random bytes', method: `${INGEST}PublishEvent`, expect: ['INVALID_ARGUMENT', 'NOT_FOUND'], build: (i) => ({ body: randomBytes(1 + (i % 200)) }) },
    { name: 'ValidateEvent bad JSON', method: `${INGEST}ValidateEvent`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: '{{' })) }) },
    { name: 'PublishEvents 1001 items', method: `${INGEST}PublishEvents`, expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: Buffer.concat(Array.from({ length: 1001 }, () => lenField(1, eventInput({ ws: pickWs(i), type: eventType, payload: '{}' })))) }) },
    { name: 'PublishEvents empty', method: `${INGEST}PublishEvents`, expect: ['INVALID_ARGUMENT'], build: () => ({ body: Buffer.alloc(0) }) },
    {
      name: 'ListAttempts unknown enum kind=99',
      method: '/webhooks.delivery.v1.DeliveryService/ListAttempts',
      expect: ['INVALID_ARGUMENT'],
      build: (i) => ({ body: Buffer.concat([lenField(1, pickWs(i)), lenField(2, ctx.workspaces[i % ctx.workspaces.length]!.endpoints[0]!.id), intField(3, 99)]) }),
    },
    {
      name: 'ListAttempts unknown enum outcome=-5',
      method: '/webhooks.delivery.v1.DeliveryService/ListAttempts',
      expect: ['INVALID_ARGUMENT'],
      build: (i) => ({ body: Buffer.concat([lenField(1, pickWs(i)), lenField(2, ctx.workspaces[i % ctx.workspaces.length]!.endpoints[0]!.id), intField(4, -5)]) }),
    },
    { name: 'ListEndpoints garbage page_token', method: '/webhooks.endpoints.v1.EndpointRegistryService/ListEndpoints', expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: Buffer.concat([lenField(1, pickWs(i)), lenField(3, randomBytes(40).toString('base64'))]) }) },
    { name: 'ListEndpoints page_size -1', method: '/webhooks.endpoints.v1.EndpointRegistryService/ListEndpoints', expect: ['INVALID_ARGUMENT'], build: (i) => ({ body: Buffer.concat([lenField(1, pickWs(i)), intField(2, -1)]) }) },
  ];

  // ---- gRPC -----------------------------------------------------------------------------------
  const clients = new Map<string, grpc.Client>();
  const clientFor = (method: string) => {
    const addr = method.startsWith(INGEST) ? input.ingestAddress : method.includes('DeliveryService') ? input.dispatcherAddress : input.registryAddress;
    let c = clients.get(addr);
    if (!c) clients.set(addr, (c = new grpc.Client(addr, clientCredentials(), { 'grpc.max_send_message_length': 16 * 1024 * 1024 })));
    return c;
  };
  const call = (method: string, body: Buffer) =>
    new Promise<{ code: string; details: string; res?: Buffer }>((resolve) =>
      clientFor(method).makeUnaryRequest(method, (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), { deadline: new Date(Date.now() + 15_000) }, (err, res) =>
        resolve(err ? { code: grpc.status[err.code] ?? String(err.code), details: err.details ?? '' } : { code: OK, details: '', res: res! }),
      ),
    );

  // Valid events are 25 %; the rest cycle through the malformed categories.
  const stats = new Map<string, { sent: number; codes: Map<string, number>; wrong: string[] }>();
  const malformedCases = grpcCases.slice(1);
  const t0 = Date.now();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= input.grpcCount) return;
      const c = i % 4 === 0 ? grpcCases[0]! : malformedCases[Math.floor(i / 4 + i) % malformedCases.length]!;
      const built = c.build(i);
      let r = await call(c.method, built.body);
      if (c.expect.includes(OK) && built.rid) {
        published++;
        wsOfRid.set(built.rid, built.ws!);
        // A valid event may meet a passing outage answer: retry with its key, like a real client.
        for (let n = 0; n < 20 && (r.code === 'UNAVAILABLE' || r.code === 'DEADLINE_EXCEEDED'); n++) {
          await sleep(500);
          r = await call(c.method, built.body);
        }
        if (r.code === OK) {
          const res = eventsV1.PublishEventResponse.decode(r.res!);
          acked.set(built.rid, { eventId: res.eventId, at: Date.now(), attempts: 1, duplicate: res.duplicate });
        }
      }
      let s = stats.get(c.name);
      if (!s) stats.set(c.name, (s = { sent: 0, codes: new Map(), wrong: [] }));
      s.sent++;
      s.codes.set(r.code, (s.codes.get(r.code) ?? 0) + 1);
      if (!c.expect.includes(r.code) && s.wrong.length < 3) s.wrong.push(`${r.code}: ${r.details.slice(0, 160)}`);
    }
  };
  // Mixed batches: valid and invalid items in one PublishEvents call; each item its own result.
  const batchStats = { calls: 0, items: 0, acceptedValid: 0, rejectedInvalid: 0, wrong: [] as string[] };
  const batches = async () => {
    for (let b = 0; b < Math.max(2, Math.floor(input.grpcCount / 100)); b++) {
      const items: { body: Buffer; rid?: string; ws?: string; valid: boolean }[] = [];
      for (let k = 0; k < 10; k++) {
        const i = 1_000_000 + b * 10 + k;
        if (k % 2 === 0) {
          const rid = `malformed-b${b}-${k}`;
          const ws = pickWs(i);
          items.push({ valid: true, rid, ws, body: eventInput({ ws, type: eventType, payload: validPayload(rid, i), key: `key-${rid}` }) });
        } else items.push({ valid: false, body: eventInput({ ws: pickWs(i), type: eventType, payload: k % 3 ? INVALID_UTF8 : '{"rid":1}' }) });
      }
      const r = await call(`${INGEST}PublishEvents`, Buffer.concat(items.map((it) => lenField(1, it.body))));
      batchStats.calls++;
      if (r.code !== OK) {
        if (batchStats.wrong.length < 3) batchStats.wrong.push(`batch answered ${r.code}: ${r.details.slice(0, 120)}`);
        continue;
      }
      const res = eventsV1.PublishEventsResponse.decode(r.res!);
      res.results.forEach((result, k) => {
        const it = items[k]!;
        batchStats.items++;
        if (it.valid) {
          published++;
          wsOfRid.set(it.rid!, it.ws!);
          if (result.outcome?.$case === 'accepted') {
            batchStats.acceptedValid++;
            acked.set(it.rid!, { eventId: result.outcome.value.eventId, at: Date.now(), attempts: 1, duplicate: result.outcome.value.duplicate });
          } else if (batchStats.wrong.length < 3) batchStats.wrong.push(`valid item ${k} answered ${JSON.stringify(result.outcome)}`);
        } else if (result.outcome?.$case === 'error' && result.outcome.value.code === grpc.status.INVALID_ARGUMENT) batchStats.rejectedInvalid++;
        else if (batchStats.wrong.length < 3) batchStats.wrong.push(`invalid item ${k} answered ${JSON.stringify(result.outcome).slice(0, 160)}`);
      });
    }
  };
  await Promise.all([...Array.from({ length: 8 }, worker), batches()]);
  for (const c of clients.values()) c.close();
  log(`  gRPC: ${input.grpcCount} requests + ${batchStats.calls} mixed batches in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  lines.push('', '  gRPC category                             | sent | expected           | got');
  for (const c of grpcCases) {
    const s = stats.get(c.name);
    if (!s) continue;
    const got = [...s.codes].map(([k, v]) => `${k}×${v}`).join(' ');
    const bad = [...s.codes.keys()].filter((k) => !c.expect.includes(k));
    lines.push(`  ${c.name.padEnd(41)} | ${String(s.sent).padStart(4)} | ${c.expect.join('|').padEnd(18)} | ${got}${bad.length ? '   <-- WRONG' : ''}`);
    if (bad.length) problems.push(`gRPC "${c.name}" answered ${bad.join(', ')} (expected ${c.expect.join('|')}), e.g. ${s.wrong[0] ?? ''}`);
    if (s.codes.has('UNKNOWN')) problems.push(`gRPC "${c.name}" answered UNKNOWN`);
  }
  lines.push(`  mixed PublishEvents batches: ${batchStats.calls} calls, ${batchStats.items} items, ${batchStats.acceptedValid} valid accepted, ${batchStats.rejectedInvalid} invalid rejected with INVALID_ARGUMENT`);
  for (const w of batchStats.wrong) problems.push(`mixed batch: ${w}`);

  // ---- Kafka ingest topic ---------------------------------------------------------------------
  const kafka = new Kafka({ clientId: 'reliability', brokers: input.kafkaBrokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 8 } });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  type KCase = { name: string; code: string | null; msg: (i: number, rid: string) => { key?: string; value: Buffer | string | null; headers: Record<string, string | Buffer | (string | Buffer)[]> } };
  const H = (ws: string, type: string, extra: Record<string, string | Buffer | (string | Buffer)[]> = {}) => ({ 'workspace-id': ws, 'event-type': type, ...extra });
  const kafkaCases: KCase[] = [
    { name: 'valid', code: null, msg: (i, rid) => ({ key: pickWs(i), value: validPayload(rid, i), headers: H(pickWs(i), eventType, { 'idempotency-key': `key-${rid}` }) }) },
    { name: 'missing workspace-id', code: 'INVALID_ARGUMENT', msg: (i, rid) => ({ value: validPayload(rid, i), headers: { 'event-type': eventType } }) },
    { name: 'missing event-type', code: 'INVALID_ARGUMENT', msg: (i, rid) => ({ value: validPayload(rid, i), headers: { 'workspace-id': pickWs(i) } }) },
    { name: 'duplicate header', code: 'INVALID_ARGUMENT', msg: (i, rid) => ({ value: validPayload(rid, i), headers: H(pickWs(i), eventType, { 'Workspace-Id': pickWs(i + 1) }) }) },
    { name: 'header invalid UTF-8', code: 'INVALID_ARGUMENT', msg: (i, rid) => ({ value: validPayload(rid, i), headers: H(pickWs(i), eventType, { 'idempotency-key': Buffer.from([0xff, 0xfe, 0x41]) }) }) },
    { name: 'value invalid UTF-8', code: 'INVALID_ARGUMENT', msg: (i) => ({ value: INVALID_UTF8, headers: H(pickWs(i), eventType) }) },
    { name: 'value not JSON', code: 'INVALID_ARGUMENT', msg: () => ({ value: '{"rid": tru', headers: H(pickWs(1), eventType) }) },
    { name: 'value wrong JSON types', code: 'INVALID_ARGUMENT', msg: (i) => ({ value: JSON.stringify({ rid: i, n: 'x' }), headers: H(pickWs(i), eventType) }) },
    { name: 'value null (tombstone)', code: 'INVALID_ARGUMENT', msg: (i) => ({ value: null, headers: H(pickWs(i), eventType) }) },
    { name: 'value 300 KiB', code: 'INVALID_ARGUMENT', msg: (i, rid) => ({ value: JSON.stringify({ rid, n: i, pad: 'x'.repeat(300 * 1024) }), headers: H(pickWs(i), eventType) }) },
    { name: 'unknown event-type', code: 'NOT_FOUND', msg: (i, rid) => ({ value: validPayload(rid, i), headers: H(pickWs(i), `rel.nope_${i % 5}`) }) },
    { name: 'workspace-id bad characters', code: 'INVALID_ARGUMENT', msg: (i, rid) => ({ value: validPayload(rid, i), headers: H('ws with spaces/∆', eventType) }) },
  ];
  const kafkaValid = new Map<string, string>();
  const expectedDlq = new Map<string, { name: string; code: string }>();
  const kStats = new Map<string, number>();
  const topic = `${input.prefix}.ingest`;
  const t1 = Date.now();
  for (let start = 0; start < input.kafkaCount; start += 50) {
    const messages = [];
    for (let i = start; i < Math.min(start + 50, input.kafkaCount); i++) {
      // 30 % valid; 300 KiB values at most every 40th message (they are slow to move around).
      let c = i % 10 < 3 ? kafkaCases[0]! : kafkaCases[1 + (i % (kafkaCases.length - 1))]!;
      if (c.name === 'value 300 KiB' && i % 40 !== 0) c = kafkaCases[6]!;
      const rid = `malformed-k${i}`;
      const m = c.msg(i, rid);
      kStats.set(c.name, (kStats.get(c.name) ?? 0) + 1);
      if (c.code === null) kafkaValid.set(rid, m.headers['workspace-id'] as string);
      else expectedDlq.set(rid, { name: c.name, code: c.code });
      messages.push({ ...m, headers: { ...m.headers, 'x-rel-id': rid } });
    }
    await producer.send({ topic, acks: -1, messages });
  }
  await producer.disconnect();
  log(`  Kafka: ${input.kafkaCount} records produced to ${topic} in ${((Date.now() - t1) / 1000).toFixed(1)} s (${kafkaValid.size} valid)`);

  // Every malformed record must show up in the DLQ with the expected code.
  const seen = new Map<string, string>();
  let dlqRecords = 0;
  const consumer = kafka.consumer({ groupId: `${input.prefix}-reliability-dlq-${randomBytes(3).toString('hex')}`, allowAutoTopicCreation: false });
  await consumer.connect();
  await consumer.subscribe({ topic: `${input.prefix}.ingest.dlq`, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      dlqRecords++;
      const rid = message.headers?.['x-rel-id']?.toString();
      if (rid) seen.set(rid, message.headers?.['hookline-error-code']?.toString() ?? '?');
    },
  });
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline && [...expectedDlq.keys()].some((rid) => !seen.has(rid))) await sleep(500);
  await consumer.disconnect();
  const byCase = new Map<string, { expected: number; found: number; wrongCode: Map<string, number> }>();
  for (const [rid, e] of expectedDlq) {
    let s = byCase.get(e.name);
    if (!s) byCase.set(e.name, (s = { expected: 0, found: 0, wrongCode: new Map() }));
    s.expected++;
    const got = seen.get(rid);
    if (got !== undefined) s.found++;
    if (got !== undefined && got !== e.code) s.wrongCode.set(got, (s.wrongCode.get(got) ?? 0) + 1);
  }
  const validInDlq = [...kafkaValid.keys()].filter((rid) => seen.has(rid));
  lines.push('', '  Kafka category                 | sent | in DLQ | expected code    | wrong codes');
  for (const c of kafkaCases) {
    const sent = kStats.get(c.name) ?? 0;
    if (c.code === null) {
      lines.push(`  ${c.name.padEnd(30)} | ${String(sent).padStart(4)} | ${String(validInDlq.length).padStart(6)} | (must be 0 in DLQ, all delivered)`);
      continue;
    }
    const s = byCase.get(c.name);
    if (!s) continue;
    const wrong = [...s.wrongCode].map(([k, v]) => `${k}×${v}`).join(' ');
    lines.push(`  ${c.name.padEnd(30)} | ${String(sent).padStart(4)} | ${String(s.found).padStart(6)} | ${c.code.padEnd(16)} | ${wrong}${s.found < s.expected || wrong ? '   <-- WRONG' : ''}`);
    if (s.found < s.expected) problems.push(`Kafka "${c.name}": ${s.expected - s.found} of ${s.expected} malformed records not in the DLQ`);
    if (wrong) problems.push(`Kafka "${c.name}": DLQ code ${wrong}, expected ${c.code}`);
  }
  lines.push(`  DLQ records read: ${dlqRecords}`);
  if (validInDlq.length > 0) problems.push(`${validInDlq.length} valid Kafka records were dead-lettered, e.g. ${validInDlq.slice(0, 3).join(', ')}`);
  return { lines, problems, published, acked, wsOfRid, kafkaValid };
}

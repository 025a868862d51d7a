// The fault-injection suite (issue 10): "accepted means delivered or visibly failed".
// Run through reliability/run.sh (`npm run test:faults [-- --quick] [-- --only=a,b]`), which
// starts a private Kafka + FerretDB and exports KAFKA_BROKERS, MONGODB_URI and the HOOKLINE_*
// settings this file uses to stop and restart them.
//
// One stack for the whole run (registry, ingest, 2-3 dispatchers as processes, one HTTPS
// receiver). Each scenario gets fresh workspaces and endpoints (a path each), publishes a steady
// stream with idempotency keys while its faults fire, then waits until every acknowledged event
// reached every endpoint of its workspace and the retry tiers are drained (or a deadline), and
// checks: missing pairs, duplicates, stuck deliveries (their latest attempt in the dispatcher's
// attempt log), visibly failed ones (`failed`), crashes, SERVING again. Exit 1 on any problem.
// Two scenarios have their own runners: `backlog` (20,000 deliveries behind a down endpoint, then
// a drain with a SIGKILL in it) and `soak` (30 min at about half the sustained rate, retention short).
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import kafkajs from 'kafkajs';
import mongoose from 'mongoose';
import { fixRequestQueue } from '@hookline/kafka';
import { endpointsV1 } from '@hookline/proto';
import { isolatedServiceEnv, makeTestPki, rpc, uniquePrefix } from '@hookline/testing';
import { RecordingReceiver, type Behaviour } from './receiver.mts';
import { Publisher, type Ack, type PlannedEvent, type PublishReport } from './publisher.mts';
import { accessMode, clientCredentials, infraScript, sleep, Stack } from './stack.mts';
import { runMalformed } from './malformed.mts';

// The suite's own kafkajs clients get the services' fix of kafkajs' 1 ms timer.
fixRequestQueue();

// ---- settings ------------------------------------------------------------------------------
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const ONLY = (args.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? '').split(',').filter(Boolean);
const num = (name: string, quick: number, full: number) => Number(process.env[name] ?? (QUICK ? quick : full));
const EVENTS = num('RELIABILITY_EVENTS', 400, 2000); // per load scenario
const RATE = num('RELIABILITY_RATE', 25, 40); // events/s offered
const WORKSPACES = num('RELIABILITY_WORKSPACES', 8, 16); // per scenario; endpoints: 2,1,2,1,... per workspace
const DISPATCHERS = num('RELIABILITY_DISPATCHERS', 2, 3);
const SETTLE_MS = num('RELIABILITY_SETTLE_SECONDS', 75, 150) * 1000;
const MALFORMED_GRPC = num('RELIABILITY_MALFORMED_GRPC', 600, 3000);
const MALFORMED_KAFKA = num('RELIABILITY_MALFORMED_KAFKA', 400, 2000);
// backlog: deliveries piled up behind one endpoint answering 503. Quick 5,000: publishing 20,000
// and draining them takes ~3 min more on the shared 2-core box (full mode, or set it).
const BACKLOG = num('RELIABILITY_BACKLOG', 5000, 20000);
// soak: minutes of load, events/s (300 events/s × 1.5 endpoints = 450 deliveries/s, about half the
// ~900-1,000 deliveries/s `npm run bench` sustains on this box, with the suite's own publisher and
// receiver in one process), and the short retention of the dispatchers it runs.
const SOAK_MINUTES = Number(process.env.RELIABILITY_SOAK_MINUTES ?? 30);
const SOAK_RATE = Number(process.env.RELIABILITY_SOAK_RATE ?? 300);
const SOAK_RETENTION_SECONDS = Number(process.env.RELIABILITY_SOAK_RETENTION_SECONDS ?? 120);
const ATTEMPT_TIMEOUT_MS = 4_000;
const EVENT_TYPE = 'rel.order_shipped';
const STATE_DIR = process.env.RELIABILITY_STATE_DIR ?? '/tmp';
const KAFKA_BROKERS = process.env.KAFKA_BROKERS;
const MONGODB_URI = process.env.MONGODB_URI;
if (!KAFKA_BROKERS || !MONGODB_URI) {
  console.error('KAFKA_BROKERS and MONGODB_URI must be set: run this through reliability/run.sh (npm run test:faults)');
  process.exit(2);
}
const suiteStart = Date.now();
// Ctrl-C / SIGTERM: exit through process.exit so @hookline/testing kills every service it started.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
const log = (msg: string) => console.log(`[${((Date.now() - suiteStart) / 1000).toFixed(1).padStart(6)}s] ${msg}`);

// ---- the stack -----------------------------------------------------------------------------
const prefix = uniquePrefix('rel');
const infra = { kafkaBrokers: KAFKA_BROKERS, mongoUri: MONGODB_URI };
const base = { ...isolatedServiceEnv(infra, prefix), LOG_LEVEL: 'info' };
const allow = { TARGET_ALLOWLIST: 'localhost,127.0.0.1/32,::1/128' };
const pki = makeTestPki();
const receiver = new RecordingReceiver(pki);
await receiver.start();
const stack = new Stack(STATE_DIR);
log(`mode ${QUICK ? 'quick' : 'full'}: ${EVENTS} events/scenario at ${RATE}/s, ${WORKSPACES} workspaces, ${DISPATCHERS} dispatchers; Kafka ${KAFKA_BROKERS}, FerretDB ${MONGODB_URI}; logs in ${STATE_DIR}/services`);

await stack.add('registry', 'endpoint-registry', { ...base, ...allow, MONGODB_DATABASE: `${prefix}_registry`, SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}` });
const registryAddress = stack.address('registry');
/** Env of dispatchers started from now on (replacements included); the soak swaps it. */
let dispatcherEnv: Record<string, string> = {
  ...base,
  ...allow,
  MONGODB_DATABASE: `${prefix}_dispatcher`,
  REGISTRY_ADDRESS: registryAddress,
  NODE_EXTRA_CA_CERTS: pki.caFile,
  KAFKA_SESSION_TIMEOUT_MS: '6000',
  ATTEMPT_TIMEOUT_MS: String(ATTEMPT_TIMEOUT_MS),
  // 4 partitions per tier (isolatedServiceEnv says 2): with 3 dispatchers each gets a share of
  // every tier's backlog.
  KAFKA_RETRY_PARTITIONS: '4',
  // One schedule for every scenario: short delays, so retried work is due again within seconds
  // (a backlog drains at once when its endpoint recovers), and ~6 min / 46 attempts in all, so
  // "missing" means lost, not "retries exhausted" (a visible failure, its own column): 60 s of
  // faults, or a 20,000-delivery backlog cycling through the tiers, never exhaust it.
  // Tiers: 500ms, 1s, 2s, 3s, 5s, 10s.
  RETRY_SCHEDULE: ['500ms', '1s', '2s', '2s', '3s', '3s', '3s', '3s', ...Array(8).fill('5s'), ...Array(30).fill('10s')].join(','),
};
await Promise.all([
  stack.add('ingest', 'event-ingest', { ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress }),
  ...Array.from({ length: DISPATCHERS }, () => stack.addDispatcher(dispatcherEnv)),
]);
log(`services up (${accessMode}): ${stack.names().map((n) => `${n}@${stack.port(n)}`).join(' ')}`);

const registry = new endpointsV1.EndpointRegistryServiceClient(registryAddress, clientCredentials());
const publisher = new Publisher(stack.address('ingest'));
// Every query of the suite is bounded: a wedged database (finding 4) must fail the run, not hang it.
/** The dispatcher database the running scenario's dispatchers write (the soak has its own). */
async function dispatcherStore(dbName: string) {
  // 90 s socket timeout: a lookup in `attempts` is a full scan on FerretDB (tens of seconds on a busy box after a backlog).
  const conn = mongoose.createConnection(MONGODB_URI!, { dbName, serverSelectionTimeoutMS: 5_000, socketTimeoutMS: 90_000 });
  await conn.asPromise();
  return { conn, attempts: bucketed(conn, 'attempts'), failed: bucketed(conn, 'failed'), delivered: bucketed(conn, 'delivered'), events: bucketed(conn, 'events') };
}

/**
 * One of the dispatcher's expiring collections, read as one: it is a series of time buckets
 * `<name>_b<startMs>_<sizeMs>` (apps/dispatcher/src/store/buckets.ts), dropped whole past retention.
 */
function bucketed(conn: mongoose.Connection, name: string) {
  const pattern = new RegExp(`^${name}_b\\d+_\\d+$`);
  const all = async () => (await conn.db!.listCollections({}, { nameOnly: true }).toArray()).filter((c) => pattern.test(c.name)).map((c) => conn.collection(c.name));
  type Doc = Record<string, unknown>;
  return {
    /** Matching documents of every bucket; with `sort` and `limit`, the first `limit` overall. */
    async find(filter: Doc, projection?: Doc, sort?: Record<string, 1 | -1>, limit?: number): Promise<Doc[]> {
      const parts = await Promise.all(
        (await all()).map((c) => {
          let q = c.find(filter as never, projection ? { projection } : {});
          if (sort) q = q.sort(sort);
          if (limit !== undefined) q = q.limit(limit);
          return q.toArray();
        }),
      );
      const docs = parts.flat() as Doc[];
      if (sort) {
        const [[field, dir]] = Object.entries(sort) as [[string, 1 | -1]];
        docs.sort((a, b) => ((a[field] as number) < (b[field] as number) ? -dir : (a[field] as number) > (b[field] as number) ? dir : 0));
      }
      return limit === undefined ? docs : docs.slice(0, limit);
    },
    async findOne(filter: Doc, opts: { projection?: Doc } = {}): Promise<Doc | null> {
      const found = await Promise.all((await all()).map((c) => c.findOne(filter as never, opts)));
      return (found.find((d) => d !== null) as Doc | undefined) ?? null;
    },
    async countDocuments(filter: Doc): Promise<number> {
      return (await Promise.all((await all()).map((c) => c.countDocuments(filter as never)))).reduce((a, n) => a + n, 0);
    },
    async estimatedDocumentCount(): Promise<number> {
      return (await Promise.all((await all()).map((c) => c.estimatedDocumentCount()))).reduce((a, n) => a + n, 0);
    },
  };
}
let store = await dispatcherStore(`${prefix}_dispatcher`);

// Waiting work lives on the retry tier topics; what the retry group has not committed yet is
// what still waits (or runs). Read with the admin client, bounded like every other query.
const kafka = new kafkajs.Kafka({ clientId: 'reliability-suite', brokers: KAFKA_BROKERS.split(','), logLevel: kafkajs.logLevel.NOTHING, retry: { retries: 2 } });
const admin = kafka.admin();
await admin.connect();
const RETRY_PREFIX = `${(base as Record<string, string>).KAFKA_TOPIC_RETRY_PREFIX}.`;
const RETRY_GROUP = `${(base as Record<string, string>).KAFKA_CONSUMER_GROUP}.retries`;
/** Records on the retry tiers not yet committed by the retry group (end offset − committed, summed); undefined if Kafka does not answer. */
async function retryLag(tries = 2): Promise<number | undefined> {
  for (let i = 0; i < tries; i++) {
    const lag = await retryLagOnce();
    if (lag !== undefined) return lag;
  }
  return undefined;
}
async function retryLagOnce(): Promise<number | undefined> {
  try {
    const topics = (await bounded(admin.listTopics(), 10_000, 'Kafka listTopics')).filter((t) => t.startsWith(RETRY_PREFIX));
    if (topics.length === 0) return 0;
    const committed = await bounded(admin.fetchOffsets({ groupId: RETRY_GROUP, topics }), 10_000, 'Kafka fetchOffsets');
    let lag = 0;
    for (const topic of topics) {
      const ends = await bounded(admin.fetchTopicOffsets(topic), 10_000, 'Kafka fetchTopicOffsets');
      const mine = committed.find((c) => c.topic === topic)?.partitions ?? [];
      for (const p of ends) {
        const c = Number(mine.find((m) => m.partition === p.partition)?.offset ?? -1);
        lag += Math.max(Number(p.high) - (c >= 0 ? c : Number(p.low)), 0);
      }
    }
    return lag;
  } catch {
    return undefined;
  }
}

await rpc(registry.createEventType.bind(registry), {
  name: EVENT_TYPE,
  description: 'Reliability suite event',
  schemaJson: JSON.stringify({ type: 'object', required: ['rid', 'n'], properties: { rid: { type: 'string' }, n: { type: 'integer' }, pad: { type: 'string' } } }),
  exampleJson: JSON.stringify({ rid: 'r_example', n: 0 }),
});

// ---- scenario model --------------------------------------------------------------------------
interface Endpoint {
  id: string;
  path: string;
}
interface Workspace {
  id: string;
  endpoints: Endpoint[];
}
interface FaultWindow {
  what: string;
  start: number;
  end: number;
  detail?: string;
}
export interface Ctx {
  name: string;
  workspaces: Workspace[];
  faults: FaultWindow[];
  notes: string[];
  problems: string[];
  /** Paths whose latency is excluded from recovery and healthy latency (deliberately slow endpoints). */
  slowPaths: Set<string>;
  modes: Map<string, Behaviour>;
}
interface Row {
  scenario: string;
  published: number;
  acked: number;
  expected: number;
  delivered: number;
  missing: number;
  duplicates: number;
  unacked: number;
  failed: number;
  stuck: number;
  maxRecoveryMs: number | undefined;
  p95LatencyMs: number | undefined;
  serving: string;
  seconds: number;
}
const rows: Row[] = [];
const allProblems: string[] = [];
const extraReports: string[] = [];

async function makeWorkspaces(name: string, count = WORKSPACES, endpointsOf = (w: number) => (w % 2 === 0 ? 2 : 1)): Promise<Workspace[]> {
  const out: Workspace[] = [];
  for (let w = 0; w < count; w++) {
    const ws: Workspace = { id: `ws_${prefix}_${name}_${w}`, endpoints: [] };
    for (let e = 0; e < endpointsOf(w); e++) {
      const p = `/${name}/w${w}/e${e}`;
      const created = await rpc(registry.createEndpoint.bind(registry), {
        workspaceId: ws.id,
        url: receiver.url(p),
        description: `reliability ${name}`,
        subscription: { selection: { $case: 'eventTypes', value: { names: [EVENT_TYPE] } } },
        requestId: '',
        standardWebhooks: false,
      });
      receiver.secrets.set(p, created.secret);
      ws.endpoints.push({ id: created.endpoint!.id, path: p });
    }
    out.push(ws);
  }
  return out;
}

/** Event `i` of a stream named `name`: round robin over the workspaces, ~250-byte payload. */
function eventAt(name: string, workspaces: Workspace[], i: number): PlannedEvent {
  const ws = workspaces[i % workspaces.length]!;
  const rid = `${name}-${i}`;
  return { workspaceId: ws.id, eventType: EVENT_TYPE, key: `key-${rid}`, rid, payload: Buffer.from(JSON.stringify({ rid, n: i, pad: 'x'.repeat(200) })) };
}

function plan(name: string, workspaces: Workspace[], n: number): PlannedEvent[] {
  return Array.from({ length: n }, (_, i) => eventAt(name, workspaces, i));
}

/** A stream built as it is sent (`length` is an upper bound when the publisher has a stop condition); records each event's workspace. */
function stream(name: string, workspaces: Workspace[], n: number, wsOfRid: Map<string, Workspace>) {
  return {
    length: n,
    at: (i: number) => {
      const e = eventAt(name, workspaces, i);
      wsOfRid.set(e.rid, workspaces[i % workspaces.length]!);
      return e;
    },
  };
}

function mergeReports(...rs: PublishReport[]): PublishReport {
  const out: PublishReport = { published: 0, acked: new Map(), unacked: new Map(), codes: new Map(), wrong: [], durationMs: 0 };
  for (const r of rs) {
    out.published += r.published;
    for (const [k, v] of r.acked) out.acked.set(k, v);
    for (const [k, v] of r.unacked) out.unacked.set(k, v);
    for (const [k, v] of r.codes) out.codes.set(k, (out.codes.get(k) ?? 0) + v);
    out.wrong.push(...r.wrong);
    out.durationMs = Math.max(out.durationMs, r.durationMs);
  }
  return out;
}

/** Deliveries per second of a sorted list of times, first to last. */
const ratePerSec = (times: number[]) => (times.length < 2 ? undefined : (times.length - 1) / ((times[times.length - 1]! - times[0]!) / 1000));

type Action = { at: number; what: string; run: (ctx: Ctx) => Promise<void> };

interface ScenarioDef {
  name: string;
  description: string;
  setup?: (ctx: Ctx) => void;
  /** Actions at a fraction (0..1) of the publishing window, run one after another. */
  actions: Action[];
  /** Graceful faults only: any duplicate is a problem. */
  noDuplicates?: boolean;
  /** Print healthy-endpoint latency next to the slow endpoints'. */
  latency?: boolean;
}

/** Rejects after `ms`: no database call of the suite may hang. */
function bounded<T>(p: Promise<T>, ms = 15_000, what = 'database query'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmtMs = (ms: number | undefined) => (ms === undefined ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms)}ms`);

// ---- faults ------------------------------------------------------------------------------
/** "delivery attempt" log lines of the last `windowMs` in a process's output (its recent work). */
function recentAttempts(name: string, windowMs = 5_000): number {
  const since = Date.now() - windowMs;
  let n = 0;
  for (const m of stack.output(name).slice(-512 * 1024).matchAll(/"time":"([^"]+)"[^\n]*"msg":"delivery attempt"/g)) if (Date.parse(m[1]!) >= since) n++;
  return n;
}

/** The live dispatcher that made the most attempts in the last 5 s (no leases any more: partition ownership is the lease). */
async function busiestDispatcher(): Promise<string> {
  const live = stack.liveDispatchers();
  const counts = live.map((n) => [n, recentAttempts(n)] as const).sort((a, b) => b[1] - a[1]);
  return counts[0] && counts[0][1] > 0 ? counts[0][0] : live[Math.floor(Math.random() * live.length)]!;
}

function stopDispatcher(sig: 'SIGKILL' | 'SIGTERM'): Action['run'] {
  return async (ctx) => {
    const victim = await busiestDispatcher();
    const start = Date.now();
    const exit = await stack.signal(victim, sig);
    let detail = `${victim} exit code=${exit.code} signal=${exit.signal} after ${exit.ms} ms`;
    if (sig === 'SIGTERM') {
      if (exit.code !== 0) ctx.problems.push(`SIGTERM of ${victim}: exit code ${exit.code} (signal ${exit.signal}), expected 0`);
      const out = stack.output(victim);
      const stopped = /"handedBackQueued":(\d+),"handedBackInFlight":(\d+),"finishedInTime":(true|false)/.exec(out);
      if (stopped) detail += `; handed back ${stopped[1]} queued, ${stopped[2]} in flight, finishedInTime=${stopped[3]}`;
    }
    const replacement = await stack.addDispatcher(dispatcherEnv);
    ctx.faults.push({ what: `${sig} ${victim} (+ start ${replacement})`, start, end: Date.now(), detail });
  };
}

function restartInfra(which: 'kafka' | 'ferretdb', downMs: number): Action['run'] {
  return async (ctx) => {
    const start = Date.now();
    const stop = await infraScript(which, 'stop');
    await sleep(downMs);
    const up = await infraScript(which, 'start');
    ctx.faults.push({ what: `${which} stop + start`, start, end: Date.now(), detail: `stop took ${stop.ms} ms, down ${downMs} ms, start took ${up.ms} ms` });
  };
}

/** 500 for `phaseMs`, then hang past the attempt timeout for `phaseMs`, then healthy again. */
function receiverTrouble(paths: (ctx: Ctx) => string[], phaseMs: number): Action['run'] {
  return async (ctx) => {
    const targets = paths(ctx);
    // Not added to slowPaths: their catch-up after the trouble IS this fault's recovery time.
    const start = Date.now();
    for (const p of targets) ctx.modes.set(p, { status: 500, delayMs: 0 });
    await sleep(phaseMs);
    // 504 after the hang: the dispatcher gave up long before, and a late answer must never count.
    for (const p of targets) ctx.modes.set(p, { status: 504, delayMs: ATTEMPT_TIMEOUT_MS + 2_000 });
    await sleep(phaseMs);
    for (const p of targets) ctx.modes.delete(p);
    ctx.faults.push({ what: `receiver 500 then hang on ${targets.length} endpoints`, start, end: Date.now(), detail: `${phaseMs} ms of 500, ${phaseMs} ms of ${ATTEMPT_TIMEOUT_MS + 2_000} ms hangs` });
  };
}

const allPaths = (ctx: Ctx) => ctx.workspaces.flatMap((w) => w.endpoints.map((e) => e.path));
const slowPathsOf = (ctx: Ctx) => [ctx.workspaces[0]!.endpoints[0]!.path, ctx.workspaces[2 % ctx.workspaces.length]!.endpoints[0]!.path];

const scenarios: ScenarioDef[] = [
  {
    name: 'sigkill',
    description: 'SIGKILL the busiest dispatcher 3 times mid-stream (a replacement starts after each)',
    actions: [0.2, 0.45, 0.7].map((at) => ({ at, what: 'SIGKILL dispatcher', run: stopDispatcher('SIGKILL') })),
  },
  {
    name: 'sigterm',
    description: 'SIGTERM the busiest dispatcher mid-stream (graceful: no duplicates expected); endpoints answer in 300 ms so work is queued and in flight',
    setup: (ctx) => {
      for (const p of allPaths(ctx)) ctx.modes.set(p, { status: 200, delayMs: 300 });
    },
    actions: [{ at: 0.4, what: 'SIGTERM dispatcher', run: stopDispatcher('SIGTERM') }],
    noDuplicates: true,
  },
  {
    name: 'kafka',
    description: 'stop the Kafka broker (graceful), keep it down 8 s, start it again',
    actions: [{ at: 0.3, what: 'restart Kafka', run: restartInfra('kafka', 8_000) }],
  },
  {
    name: 'database',
    description: 'stop FerretDB, keep it down 8 s, start it again',
    actions: [{ at: 0.3, what: 'restart FerretDB', run: restartInfra('ferretdb', 8_000) }],
  },
  {
    name: 'receiver',
    description: `every endpoint answers 500 for 8 s, then hangs ${(ATTEMPT_TIMEOUT_MS + 2_000) / 1000} s (timeout ${ATTEMPT_TIMEOUT_MS / 1000} s) for 8 s, then recovers`,
    actions: [{ at: 0.25, what: 'receiver trouble', run: receiverTrouble(allPaths, 8_000) }],
  },
  {
    name: 'slow',
    description: 'two endpoints answer after 2.5 s (under the timeout) beside healthy ones in the same workspaces',
    setup: (ctx) => {
      for (const p of slowPathsOf(ctx)) {
        ctx.modes.set(p, { status: 200, delayMs: 2_500 });
        ctx.slowPaths.add(p);
      }
    },
    actions: [],
    latency: true,
  },
  {
    name: 'combined',
    description: 'one stream: slow endpoints throughout; SIGKILL a dispatcher, 500-then-hang on a third of the endpoints, Kafka restart, FerretDB restart, SIGTERM a dispatcher',
    setup: (ctx) => {
      for (const p of slowPathsOf(ctx)) {
        ctx.modes.set(p, { status: 200, delayMs: 2_500 });
        ctx.slowPaths.add(p);
      }
    },
    actions: [
      { at: 0.1, what: 'SIGKILL dispatcher', run: stopDispatcher('SIGKILL') },
      { at: 0.2, what: 'receiver trouble', run: receiverTrouble((ctx) => allPaths(ctx).filter((_, i) => i % 3 === 1), 5_000) },
      { at: 0.35, what: 'restart Kafka', run: restartInfra('kafka', 5_000) },
      { at: 0.6, what: 'restart FerretDB', run: restartInfra('ferretdb', 5_000) },
      { at: 0.8, what: 'SIGTERM dispatcher', run: stopDispatcher('SIGTERM') },
    ],
    latency: true,
  },
];

// ---- accounting --------------------------------------------------------------------------
interface Pair {
  key: string;
  rid: string;
  eventId: string;
  endpoint: Endpoint;
  ackAt: number;
}

function expectedPairs(ctx: Ctx, acked: Map<string, Ack>, wsOfRid: Map<string, Workspace>): Pair[] {
  const out: Pair[] = [];
  for (const [rid, a] of acked) for (const endpoint of wsOfRid.get(rid)!.endpoints) out.push({ key: `${endpoint.path} ${a.eventId}`, rid, eventId: a.eventId, endpoint, ackAt: a.at });
  return out;
}

/** Once every pair arrived, how long to wait for the retry tiers to drain (verify records of a kill, retries of duplicates). */
const LAG_WAIT_MS = 30_000;

/**
 * Waits until every expected pair arrived and the retry group has committed everything on the
 * tiers (nothing waits any more: a late duplicate would show), or the deadline. Returns the last
 * lag read (undefined: Kafka did not answer).
 */
async function settle(ctx: Ctx, pairs: Pair[], deadlineMs: number): Promise<number | undefined> {
  const end = Date.now() + deadlineMs;
  let lastLog = 0;
  let allSince: number | undefined;
  let lag: number | undefined;
  while (Date.now() < end) {
    const missing = pairs.filter((p) => !receiver.delivered.has(p.key)).length;
    const progress = Date.now() - lastLog > 10_000;
    if (missing === 0 || progress) lag = await retryLag();
    if (missing === 0) {
      allSince ??= Date.now();
      if (lag === 0 || Date.now() - allSince > LAG_WAIT_MS) return lag;
    }
    if (progress) {
      lastLog = Date.now();
      log(`  waiting: ${missing} of ${pairs.length} deliveries missing; retry tiers: ${lag ?? '?'} records not yet committed by ${RETRY_GROUP}`);
    }
    await sleep(500);
  }
  return lag;
}

/** Latest attempt of each delivery id (by attempt number), looked up in chunks; undefined entries have none. */
async function latestAttempts(ids: string[]): Promise<Map<string, Record<string, unknown>>> {
  const latest = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < ids.length; i += 200) {
    const docs = await bounded(
      store.attempts.find({ deliveryId: { $in: ids.slice(i, i + 200) }, kind: 'live' }, { deliveryId: 1, attemptNumber: 1, outcome: 1, responseStatus: 1, detail: 1, error: 1, nextAttemptAt: 1, createdAt: 1 }),
      // A scan of `attempts` on FerretDB (no index use for $in on a field): slow on a busy box.
      80_000,
      'attempts lookup',
    );
    for (const d of docs) {
      // The error is in the packed `detail` (store/models.ts, storedAttempt) of attempts written so.
      if (typeof d.detail === 'string') d.error = (JSON.parse(d.detail) as { error?: string }).error;
      const prev = latest.get(String(d.deliveryId));
      if (!prev || Number(d.attemptNumber) > Number(prev.attemptNumber)) latest.set(String(d.deliveryId), d);
    }
  }
  return latest;
}

/** Missing pairs looked up at most (each lookup scans `attempts` on FerretDB). */
const LOOKUP_LIMIT = 1_000;
const STUCK_AFTER_MS = 10_000;

/**
 * Classifies missing pairs by their latest attempt: stuck = no attempt at all, or a retry due
 * more than 10 s ago that never happened; the rest wait for a retry not yet due, or ended
 * (`failed`, counted on its own). Returns the stuck count and lines for the first 20 (details).
 */
async function explainMissing(missing: Pair[]): Promise<{ stuck: number; lines: string[]; lookedUp: number }> {
  const lines: string[] = [];
  const looked = missing.slice(0, LOOKUP_LIMIT);
  const idOf = (p: Pair) => `${p.eventId}|${p.endpoint.id}`;
  let latest: Map<string, Record<string, unknown>>;
  try {
    latest = await latestAttempts(looked.map(idOf));
  } catch (err) {
    lines.push(`    ${missing.length} missing not looked up: the dispatcher database does not answer (${(err as Error).message})`);
    return { stuck: 0, lines, lookedUp: 0 };
  }
  const now = Date.now();
  let stuck = 0;
  let shown = 0;
  for (const p of looked) {
    const a = latest.get(idOf(p));
    const next = a?.nextAttemptAt instanceof Date ? a.nextAttemptAt.getTime() : undefined;
    const isStuck = !a || (next !== undefined && next < now - STUCK_AFTER_MS);
    if (isStuck) stuck++;
    if (shown >= 20) continue;
    shown++;
    let where: string;
    try {
      if (a) {
        const ended = a.outcome === 'failed' && next === undefined ? await bounded(store.failed.findOne({ deliveryId: idOf(p) }, { projection: { reason: 1, attemptCount: 1 } }), 5_000) : null;
        const ok = a.outcome === 'succeeded' ? await bounded(store.delivered.findOne({ _id: idOf(p) as never }), 5_000) : null;
        where = `${isStuck ? 'STUCK: ' : ''}latest attempt #${a.attemptNumber} ${a.outcome} status=${a.responseStatus} error=${JSON.stringify(a.error)} at ${(a.createdAt as Date)?.toISOString?.()}, next=${next === undefined ? 'none' : new Date(next).toISOString()}`;
        if (a.outcome === 'succeeded') where += ok ? ' (delivered doc present: the dispatcher believes it delivered; the receiver wrote no 2xx)' : ' (no delivered doc)';
        if (ended) where += `; failed: ${JSON.stringify(ended.reason)} after ${ended.attemptCount}`;
      } else {
        where = (await bounded(store.events.findOne({ _id: p.eventId as never }, { projection: { _id: 1 } }), 5_000))
          ? 'STUCK: event stored in the dispatcher but no attempt for this endpoint (waiting on a tier, or lost)'
          : 'STUCK: never reached the dispatcher (no event, no attempt)';
      }
    } catch (err) {
      where = `(database lookup failed: ${(err as Error).message})`;
    }
    lines.push(`    missing ${p.eventId} → ${p.endpoint.path} (rid ${p.rid}, acked ${new Date(p.ackAt).toISOString()}): ${where}`);
  }
  if (missing.length > 20) lines.push(`    … and ${missing.length - 20} more${missing.length > LOOKUP_LIMIT ? ` (stuck counted among the first ${LOOKUP_LIMIT})` : ''}`);
  return { stuck, lines, lookedUp: looked.length };
}

/** Same key again: must answer OK, duplicate=true, the same event id. */
async function checkIdempotency(ctx: Ctx, events: PlannedEvent[], acked: Map<string, Ack>): Promise<void> {
  const sample = events.filter((e) => acked.has(e.rid)).sort(() => Math.random() - 0.5).slice(0, 10);
  for (const e of sample) {
    try {
      const res = await publisher.publishOnce(e);
      if (!res.duplicate || res.eventId !== acked.get(e.rid)!.eventId) ctx.problems.push(`idempotency: republishing ${e.key} answered eventId=${res.eventId} duplicate=${res.duplicate}, first answer was ${acked.get(e.rid)!.eventId}`);
    } catch (err) {
      ctx.problems.push(`idempotency: republishing ${e.key} failed with ${grpc.status[(err as grpc.ServiceError).code]}`);
    }
  }
}

async function finish(ctx: Ctx, t0: number, report: Pick<PublishReport, 'published' | 'acked' | 'unacked'>, wsOfRid: Map<string, Workspace>, opts: { noDuplicates?: boolean; latency?: boolean; settleMs?: number }): Promise<Row> {
  const pairs = expectedPairs(ctx, report.acked, wsOfRid);
  const lagLeft = await settle(ctx, pairs, opts.settleMs ?? SETTLE_MS);
  const missing = pairs.filter((p) => !receiver.delivered.has(p.key));
  let duplicates = 0;
  const pathsOfScenario = new Set(ctx.workspaces.flatMap((w) => w.endpoints.map((e) => e.path)));
  for (const [key, d] of receiver.delivered) if (pathsOfScenario.has(key.slice(0, key.indexOf(' '))) && d.count > 1) duplicates += d.count - 1;
  // Latency: first 2xx minus acknowledgement (negative when delivery beat the ack: 0).
  const lat = (filter: (p: Pair) => boolean) => pairs.filter((p) => filter(p) && receiver.delivered.has(p.key)).map((p) => Math.max(receiver.delivered.get(p.key)!.firstAt - p.ackAt, 0));
  const healthyLat = lat((p) => !ctx.slowPaths.has(p.endpoint.path));
  // Recovery per fault: how long after the fault ended the last delivery acknowledged before
  // that moment arrived (deliberately slow/failing endpoints excluded).
  let maxRecovery: number | undefined;
  for (const f of ctx.faults) {
    let r = 0;
    for (const p of pairs) {
      if (p.ackAt > f.end || ctx.slowPaths.has(p.endpoint.path)) continue;
      const d = receiver.delivered.get(p.key);
      if (d && d.firstAt > f.end) r = Math.max(r, d.firstAt - f.end);
    }
    (f as FaultWindow & { recoveryMs?: number }).recoveryMs = r;
    maxRecovery = Math.max(maxRecovery ?? 0, r);
  }
  // Visibly failed: a `failed` document (retries exhausted, 410, endpoint gone) for the scenario's
  // workspaces. Stuck: missing, and the latest attempt is a retry due > 10 s ago, or there is none.
  let failed = 0;
  try {
    failed = await bounded(store.failed.countDocuments({ workspaceId: { $in: ctx.workspaces.map((w) => w.id) } }));
  } catch (err) {
    ctx.problems.push(`could not query the dispatcher database: ${(err as Error).message}`);
  }
  const explained = missing.length > 0 ? await explainMissing(missing) : { stuck: 0, lines: [], lookedUp: 0 };
  const stuck = explained.stuck;
  if (lagLeft === undefined) ctx.notes.push('  retry tiers: Kafka did not answer the lag query after settling');
  else if (lagLeft > 0) ctx.notes.push(`  retry tiers: ${lagLeft} records still not committed by ${RETRY_GROUP} after settling`);
  const serving = await stack.waitServing(60_000);
  const servingText = serving.ms === undefined ? 'NO' : 'yes';
  if (serving.ms === undefined) {
    ctx.problems.push(`not every service is SERVING 60 s after settling: ${JSON.stringify(serving.last)}`);
    // A process alive but not serving (e.g. its Kafka consumer died) would spoil every later
    // scenario: replace it, so each scenario measures its own faults.
    for (const [name, state] of Object.entries(serving.last)) {
      if (state === 'SERVING') continue;
      try {
        await stack.signal(name, 'SIGKILL');
        if (name.startsWith('dispatcher-')) ctx.notes.push(`replaced ${name} (${state}) by ${await stack.addDispatcher(dispatcherEnv)}`);
        else {
          await stack.start(name);
          ctx.notes.push(`restarted ${name} (${state})`);
        }
      } catch (err) {
        ctx.problems.push(`could not replace ${name}: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
      }
    }
  }
  if (missing.length > 0) {
    ctx.problems.push(`${missing.length} acknowledged (event, endpoint) pairs never delivered`);
    ctx.notes.push(...explained.lines);
  }
  if (stuck > 0) ctx.problems.push(`${stuck} missing deliveries stuck (no attempt at all, or a retry due more than 10 s ago not made)${missing.length > LOOKUP_LIMIT ? ` among the first ${LOOKUP_LIMIT} looked up` : ''}`);
  if (failed > 0) ctx.problems.push(`${failed} deliveries visibly failed (\`failed\` documents: retries exhausted, 410, endpoint gone) although every fault ends within the retry budget`);
  if (opts.noDuplicates && duplicates > 0) ctx.problems.push(`${duplicates} duplicate deliveries after a graceful shutdown (zero expected)`);
  const unackedDelivered = [...report.unacked.keys()].filter((rid) => receiver.idsOfRid.has(rid)).length;
  if (report.unacked.size > 0) ctx.notes.push(`${report.unacked.size} events never acknowledged (${[...new Set(report.unacked.values())].join(', ')}); ${unackedDelivered} of them were delivered anyway`);
  for (const f of ctx.faults) ctx.notes.push(`  fault ${f.what} at +${((f.start - t0) / 1000).toFixed(1)}s, lasted ${fmtMs(f.end - f.start)}, recovery ${fmtMs((f as FaultWindow & { recoveryMs?: number }).recoveryMs)}${f.detail ? ` (${f.detail})` : ''}`);
  if (opts.latency) {
    const slow = lat((p) => ctx.slowPaths.has(p.endpoint.path));
    ctx.notes.push(`  latency (ack → first 2xx) healthy endpoints: n=${healthyLat.length} p50=${fmtMs(pct(healthyLat, 50))} p95=${fmtMs(pct(healthyLat, 95))} p99=${fmtMs(pct(healthyLat, 99))} max=${fmtMs(pct(healthyLat, 100))}`);
    ctx.notes.push(`  latency slow/failing endpoints: n=${slow.length} p50=${fmtMs(pct(slow, 50))} p95=${fmtMs(pct(slow, 95))} max=${fmtMs(pct(slow, 100))}`);
  }
  const crashes = stack.crashes.filter((c) => c.at >= t0);
  for (const c of crashes) ctx.problems.push(`CRASH: ${c.name} exited code=${c.code} signal=${c.signal}; last output:\n${c.tail.split('\n').slice(-15).join('\n')}`);
  const revived = await stack.reviveCrashed();
  if (revived.length > 0) ctx.notes.push(`restarted after a crash: ${revived.join(', ')}`);
  return {
    scenario: ctx.name,
    published: report.published,
    acked: report.acked.size,
    expected: pairs.length,
    delivered: pairs.length - missing.length,
    missing: missing.length,
    duplicates,
    unacked: report.unacked.size,
    failed,
    stuck,
    maxRecoveryMs: maxRecovery,
    p95LatencyMs: pct(healthyLat, 95),
    serving: servingText,
    seconds: Math.round((Date.now() - t0) / 1000),
  };
}

function newCtx(name: string, workspaces: Workspace[]): Ctx {
  const ctx: Ctx = { name, workspaces, faults: [], notes: [], problems: [], slowPaths: new Set(), modes: new Map() };
  return ctx;
}

// Behaviour by path: the scenario that owns the path decides.
const ctxByPrefix = new Map<string, Ctx>();
receiver.behaviourFor = (p) => ctxByPrefix.get(p.split('/')[1] ?? '')?.modes.get(p) ?? { status: 200, delayMs: 0 };

async function runScenario(def: ScenarioDef): Promise<void> {
  log(`== ${def.name}: ${def.description}`);
  const ctx = newCtx(def.name, await makeWorkspaces(def.name));
  ctxByPrefix.set(def.name, ctx);
  def.setup?.(ctx);
  const events = plan(def.name, ctx.workspaces, EVENTS);
  const wsOfRid = new Map(events.map((e) => [e.rid, ctx.workspaces.find((w) => w.id === e.workspaceId)!]));
  const t0 = Date.now();
  const windowMs = (EVENTS / RATE) * 1000;
  // Faults run one after another, each no earlier than its point in the publishing window.
  const faults = (async () => {
    for (const a of def.actions) {
      const due = t0 + a.at * windowMs;
      if (due > Date.now()) await sleep(due - Date.now());
      log(`  fault: ${a.what}`);
      try {
        await a.run(ctx);
      } catch (err) {
        ctx.problems.push(`fault ${a.what} could not be injected: ${(err as Error).message}`);
      }
    }
  })();
  const report = await publisher.run(events, RATE, 16, 120_000);
  await faults;
  log(`  published ${report.published}, acknowledged ${report.acked.size} in ${(report.durationMs / 1000).toFixed(1)} s; non-OK answers on the way: ${JSON.stringify(Object.fromEntries(report.codes))}`);
  for (const w of report.wrong.slice(0, 5)) ctx.problems.push(`valid event ${w.rid} answered ${w.code}: ${w.details}`);
  if (report.wrong.length > 5) ctx.problems.push(`… ${report.wrong.length - 5} more valid events answered a non-retryable error`);
  const row = await finish(ctx, t0, report, wsOfRid, def);
  await checkIdempotency(ctx, events, report.acked);
  ctx.modes.clear();
  report_(ctx, row);
}

function report_(ctx: Ctx, row: Row): void {
  rows.push(row);
  printTable([row]);
  for (const n of ctx.notes) console.log(n);
  for (const p of ctx.problems) {
    console.log(`  PROBLEM [${ctx.name}] ${p}`);
    allProblems.push(`[${ctx.name}] ${p.split('\n')[0]}`);
  }
}

const COLUMNS: [keyof Row, string][] = [
  ['scenario', 'scenario'],
  ['published', 'published'],
  ['acked', 'acked'],
  ['expected', 'expected'],
  ['delivered', 'delivered'],
  ['missing', 'missing'],
  ['duplicates', 'dups'],
  ['unacked', 'unacked'],
  ['failed', 'failed'],
  ['stuck', 'stuck'],
  ['maxRecoveryMs', 'max recovery'],
  ['p95LatencyMs', 'p95 latency'],
  ['serving', 'SERVING'],
  ['seconds', 'secs'],
];
function tableLines(rs: Row[]): string[] {
  const cell = (r: Row, k: keyof Row) => (k === 'maxRecoveryMs' || k === 'p95LatencyMs' ? fmtMs(r[k] as number | undefined) : String(r[k]));
  const widths = COLUMNS.map(([k, h]) => Math.max(h.length, ...rs.map((r) => cell(r, k).length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(COLUMNS.map(([, h]) => h)), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rs.map((r) => line(COLUMNS.map(([k]) => cell(r, k))))];
}
function printTable(rs: Row[]): void {
  for (const l of tableLines(rs)) console.log(l);
}

// ---- backlog: deliveries piled up behind a down endpoint, then a drain with a SIGKILL in it ----
async function runBacklog(): Promise<void> {
  const name = 'backlog';
  log(`== backlog: one endpoint answers 503 while ${BACKLOG} deliveries pile up behind it (healthy workspaces get ${RATE}/s meanwhile), then 200; SIGKILL a dispatcher during the drain`);
  // Workspace 0 has the one down endpoint; the others (2, 1, 2, … endpoints) a steady side stream.
  const all = await makeWorkspaces(name, 1 + Math.max(Math.floor(WORKSPACES / 2), 2), (w) => (w === 0 ? 1 : w % 2 === 1 ? 2 : 1));
  const ctx = newCtx(name, all);
  ctxByPrefix.set(name, ctx);
  const [downWs, ...healthy] = all as [Workspace, ...Workspace[]];
  const downPath = downWs.endpoints[0]!.path;
  ctx.modes.set(downPath, { status: 503, delayMs: 0 });
  ctx.slowPaths.add(downPath);
  const wsOfRid = new Map<string, Workspace>();
  const t0 = Date.now();
  let stopSide = false;
  const side = publisher.run(stream(`${name}-side`, healthy, 10_000_000, wsOfRid), RATE, 16, 120_000, { stop: () => stopSide });
  const bulkEvents = plan(`${name}-down`, [downWs], BACKLOG);
  for (const e of bulkEvents) wsOfRid.set(e.rid, downWs);
  const bulk = await publisher.runBatches(bulkEvents, 250, 4, 120_000);
  log(`  backlog published: ${bulk.published} sent, ${bulk.acked.size} acknowledged in ${(bulk.durationMs / 1000).toFixed(1)} s (${Math.round(bulk.acked.size / (bulk.durationMs / 1000))}/s); non-OK answers on the way: ${JSON.stringify(Object.fromEntries(bulk.codes))}`);
  // Keep it down a little longer: every delivery attempted at least once and waiting on a tier.
  await sleep(15_000);
  const lagAtRecovery = await retryLag();
  const failedAttempts = receiver.statusCounts.get(503) ?? 0;
  const recoverAt = Date.now();
  ctx.modes.delete(downPath);
  log(`  endpoint recovers (200) after ${((recoverAt - t0) / 1000).toFixed(1)} s down: ${failedAttempts} attempts answered 503; retry tiers hold ${lagAtRecovery ?? '?'} records not yet committed`);
  ctx.notes.push(`  outage: ${((recoverAt - t0) / 1000).toFixed(1)} s, ${bulk.acked.size} deliveries behind the endpoint, ${failedAttempts} attempts answered 503, retry tiers ${lagAtRecovery ?? '?'} records uncommitted at recovery`);
  const downKeys = [...bulk.acked.values()].map((a) => `${downPath} ${a.eventId}`);
  const deliveredDown = () => downKeys.reduce((n, k) => n + (receiver.delivered.has(k) ? 1 : 0), 0);
  // SIGKILL once a quarter of the backlog has arrived (at most 120 s after the recovery).
  const killBy = Date.now() + 120_000;
  while (deliveredDown() < downKeys.length / 4 && Date.now() < killBy) await sleep(100);
  const atKill = deliveredDown();
  log(`  fault: SIGKILL dispatcher during the drain (${atKill} of ${downKeys.length} delivered, +${((Date.now() - recoverAt) / 1000).toFixed(1)} s after recovery)`);
  try {
    await stopDispatcher('SIGKILL')(ctx);
  } catch (err) {
    ctx.problems.push(`fault SIGKILL dispatcher could not be injected: ${(err as Error).message}`);
  }
  // The drain, bounded: 25 ms per delivery (500 s for 20,000), at least the settle time.
  const drainBy = Date.now() + Math.max(SETTLE_MS, BACKLOG * 25);
  let lastLog = Date.now();
  let lastCount = atKill;
  for (let n = deliveredDown(); n < downKeys.length && Date.now() < drainBy; n = deliveredDown()) {
    if (Date.now() - lastLog >= 10_000) {
      log(`  draining: ${n} of ${downKeys.length} delivered (${Math.round(((n - lastCount) * 1000) / (Date.now() - lastLog))}/s over the last 10 s); retry tiers ${(await retryLag()) ?? '?'} records uncommitted`);
      lastLog = Date.now();
      lastCount = n;
    }
    await sleep(250);
  }
  stopSide = true;
  const sideReport = await side;
  const report = mergeReports(bulk, sideReport);
  log(`  side stream: published ${sideReport.published}, acknowledged ${sideReport.acked.size}; non-OK answers: ${JSON.stringify(Object.fromEntries(sideReport.codes))}`);
  for (const w of report.wrong.slice(0, 5)) ctx.problems.push(`valid event ${w.rid} answered ${w.code}: ${w.details}`);
  const row = await finish(ctx, t0, report, wsOfRid, { latency: true });
  // Drain rate: first success after the recovery to the last.
  const times = downKeys.flatMap((k) => (receiver.delivered.has(k) ? [receiver.delivered.get(k)!.firstAt] : [])).sort((a, b) => a - b);
  const drain = ratePerSec(times);
  ctx.notes.push(
    `  drain: ${times.length} of ${downKeys.length} delivered; first success ${fmtMs((times[0] ?? NaN) - recoverAt)} after recovery, last ${fmtMs((times[times.length - 1] ?? NaN) - recoverAt)} after; **drain rate ${drain === undefined ? '-' : Math.round(drain)} deliveries/s** (SIGKILL at ${atKill} delivered)`,
  );
  // Healthy endpoints while the backlog waited and while it drained (head-of-line blocking in retries).
  const lastDrain = times[times.length - 1] ?? Date.now();
  const sideLat = (from: number, to: number) =>
    [...sideReport.acked].flatMap(([rid, a]) => (a.at >= from && a.at < to ? wsOfRid.get(rid)!.endpoints.flatMap((e) => (receiver.delivered.has(`${e.path} ${a.eventId}`) ? [Math.max(receiver.delivered.get(`${e.path} ${a.eventId}`)!.firstAt - a.at, 0)] : [])) : []));
  for (const [what, xs] of [
    ['while down', sideLat(t0, recoverAt)],
    ['while draining', sideLat(recoverAt, lastDrain)],
  ] as const)
    ctx.notes.push(`  healthy endpoints ${what}: n=${xs.length} p50=${fmtMs(pct(xs, 50))} p95=${fmtMs(pct(xs, 95))} p99=${fmtMs(pct(xs, 99))} max=${fmtMs(pct(xs, 100))}`);
  extraReports.push(`backlog: ${downKeys.length} behind a 503 endpoint for ${((recoverAt - t0) / 1000).toFixed(0)} s; drain rate ${drain === undefined ? '-' : Math.round(drain)} deliveries/s; SIGKILL during the drain`);
  await checkIdempotency(ctx, bulkEvents, bulk.acked);
  ctx.modes.clear();
  report_(ctx, row);
}

// ---- soak: ~30 min at about half the sustained rate, retention short, 10 % of requests fail ----
interface DbSample {
  at: number;
  dataSize: number | undefined;
  storageSize: number | undefined;
  counts: Record<string, number | undefined>;
  total: number | undefined;
  lag: number | undefined;
  deliveredPerSec: number;
}

async function runSoak(): Promise<void> {
  const name = 'soak';
  const loadMs = SOAK_MINUTES * 60_000;
  const tailMs = 20_000; // load goes on this long after the closing SIGKILL
  log(`== soak: ${SOAK_MINUTES} min at ${SOAK_RATE} events/s, every endpoint failing 10 % of requests (500), dispatchers with RETENTION_SECONDS=${SOAK_RETENTION_SECONDS} (expired buckets dropped every 10 s); SIGKILL a dispatcher at the end`);
  // Dispatchers with short retention, writing a database of their own (its size is the soak's alone).
  const soakDb = `${prefix}_dispatcher_soak`;
  dispatcherEnv = { ...dispatcherEnv, MONGODB_DATABASE: soakDb, RETENTION_SECONDS: String(SOAK_RETENTION_SECONDS), RETENTION_SWEEP_INTERVAL_SECONDS: '10' };
  const old = stack.liveDispatchers();
  for (let i = 0; i < DISPATCHERS; i++) await stack.addDispatcher(dispatcherEnv);
  for (const n of old) await stack.signal(n, 'SIGTERM');
  await store.conn.close().catch(() => undefined);
  store = await dispatcherStore(soakDb);
  log(`  dispatchers now: ${stack.liveDispatchers().join(', ')}`);

  const ctx = newCtx(name, await makeWorkspaces(name));
  ctxByPrefix.set(name, ctx);
  for (const p of allPaths(ctx)) ctx.modes.set(p, { status: 200, delayMs: 0, failPercent: 10 });
  const perSec = new Map<number, number>();
  receiver.onFirstDelivery = (p) => {
    if (!p.startsWith(`/${name}/`)) return;
    const s = Math.floor(Date.now() / 1000);
    perSec.set(s, (perSec.get(s) ?? 0) + 1);
  };
  const deliveredBetween = (from: number, to: number) => {
    let n = 0;
    for (let s = Math.floor(from / 1000); s < Math.floor(to / 1000); s++) n += perSec.get(s) ?? 0;
    return n;
  };
  const wsOfRid = new Map<string, Workspace>();
  const total = Math.round(((loadMs + tailMs) / 1000) * SOAK_RATE);
  const t0 = Date.now();
  let acks = 0;
  // Bounded in time: a stack that cannot keep up must not stretch the soak (events not sent by then are not counted).
  const pub = publisher.run(stream(name, ctx.workspaces, total, wsOfRid), SOAK_RATE, 64, 120_000, { onAck: () => acks++, stop: () => Date.now() > t0 + loadMs + tailMs });
  let acksBefore = 0;

  // One sample a minute: dbStats and document counts of the dispatcher database, retry lag.
  const samples: DbSample[] = [];
  for (let m = 1; m <= SOAK_MINUTES; m++) {
    const at = t0 + m * 60_000;
    if (at > Date.now()) await sleep(at - Date.now());
    const s: DbSample = { at: Date.now(), dataSize: undefined, storageSize: undefined, counts: {}, total: undefined, lag: await retryLag(), deliveredPerSec: deliveredBetween(at - 60_000, at) / 60 };
    try {
      const st = (await bounded(store.conn.db!.command({ dbStats: 1 }), 15_000, 'dbStats')) as { dataSize?: number; storageSize?: number };
      s.dataSize = st.dataSize;
      s.storageSize = st.storageSize;
    } catch {
      /* reported as '?' */
    }
    let sum = 0;
    for (const c of ['events', 'attempts', 'delivered', 'failed'] as const) {
      try {
        s.counts[c] = await bounded(store[c].estimatedDocumentCount(), 15_000, `count ${c}`);
        sum += s.counts[c]!;
      } catch {
        s.counts[c] = undefined;
      }
    }
    s.total = Object.values(s.counts).every((v) => v !== undefined) ? sum : undefined;
    samples.push(s);
    const ackRate = (acks - acksBefore) / ((Date.now() - (samples[samples.length - 2]?.at ?? t0)) / 1000);
    acksBefore = acks;
    log(`  soak +${m} min: ${acks} events acknowledged (${ackRate.toFixed(0)}/s since the last sample), ${s.deliveredPerSec.toFixed(0)} deliveries/s in the last minute; dispatcher db ${s.total ?? '?'} documents ${JSON.stringify(s.counts)}, dataSize ${mb(s.dataSize)}, storageSize ${mb(s.storageSize)}; retry tiers ${s.lag ?? '?'} uncommitted`);
  }

  // The closing SIGKILL, while the load goes on.
  const tLoadEnd = t0 + loadMs;
  if (tLoadEnd > Date.now()) await sleep(tLoadEnd - Date.now());
  const killAt = Date.now();
  log('  fault: SIGKILL dispatcher at the end of the soak (load goes on for 20 s)');
  try {
    await stopDispatcher('SIGKILL')(ctx);
  } catch (err) {
    ctx.problems.push(`fault SIGKILL dispatcher could not be injected: ${(err as Error).message}`);
  }
  const report = await pub;
  log(`  published ${report.published}, acknowledged ${report.acked.size} in ${(report.durationMs / 1000).toFixed(1)} s; non-OK answers on the way: ${JSON.stringify(Object.fromEntries(report.codes))}`);
  for (const w of report.wrong.slice(0, 5)) ctx.problems.push(`valid event ${w.rid} answered ${w.code}: ${w.details}`);
  const row = await finish(ctx, t0, report, wsOfRid, {});
  receiver.onFirstDelivery = undefined;

  // 1. Throughput at the receiver: the last window vs the first (5 min, or a third of a shorter soak).
  const w = Math.min(5 * 60_000, Math.floor(loadMs / 3));
  const first = deliveredBetween(t0, t0 + w) / (w / 1000);
  const last = deliveredBetween(tLoadEnd - w, tLoadEnd) / (w / 1000);
  const ratio = first > 0 ? last / first : 0;
  ctx.notes.push(`  throughput at the receiver (first 2xx per delivery): first ${w / 60_000} min ${first.toFixed(1)}/s, last ${w / 60_000} min ${last.toFixed(1)}/s (**${(ratio * 100).toFixed(1)} %**, needs ≥ 90 %); offered ${SOAK_RATE} events/s ≈ ${(SOAK_RATE * 1.5).toFixed(0)} deliveries/s`);
  if (ratio < 0.9) ctx.problems.push(`throughput of the last ${w / 60_000} min is ${(ratio * 100).toFixed(1)} % of the first (${last.toFixed(1)} vs ${first.toFixed(1)} deliveries/s), below 90 %`);

  // 2. The database levels off: the max of the last third of the samples ≤ 1.2 × the max of the middle third.
  ctx.notes.push('  dispatcher database, one sample a minute (min: documents events/attempts/delivered/failed = total, dataSize, storageSize, deliveries/s, retry lag):');
  for (const s of samples) ctx.notes.push(`    +${Math.round((s.at - t0) / 60_000)}: ${s.counts.events ?? '?'}/${s.counts.attempts ?? '?'}/${s.counts.delivered ?? '?'}/${s.counts.failed ?? '?'} = ${s.total ?? '?'}, ${mb(s.dataSize)}, ${mb(s.storageSize)}, ${s.deliveredPerSec.toFixed(0)}/s, lag ${s.lag ?? '?'}`);
  const third = Math.floor(samples.length / 3);
  for (const [what, pick] of [
    ['documents', (s: DbSample) => s.total],
    ['dataSize', (s: DbSample) => s.dataSize],
  ] as const) {
    // A sample can fail (a count or dbStats timing out, or meeting a bucket dropped meanwhile):
    // each third is judged on the samples it has, at least two.
    const middle = samples.slice(third, 2 * third).map(pick).filter((v) => v !== undefined);
    const lastThird = samples.slice(2 * third).map(pick).filter((v) => v !== undefined);
    if (third === 0 || middle.length < 2 || lastThird.length < 2) {
      ctx.notes.push(`  ${what}: not enough samples to judge levelling off (${samples.length} samples, ${middle.length} and ${lastThird.length} usable in the middle and last thirds)`);
      if (what === 'documents') ctx.problems.push(`database size not judged: too few samples answered`);
      continue;
    }
    const maxMiddle = Math.max(...(middle as number[]));
    const maxLast = Math.max(...(lastThird as number[]));
    const grows = maxLast > 1.2 * maxMiddle;
    ctx.notes.push(`  ${what}: max of the middle third ${what === 'dataSize' ? mb(maxMiddle) : maxMiddle}, of the last third ${what === 'dataSize' ? mb(maxLast) : maxLast} (**×${(maxLast / Math.max(maxMiddle, 1)).toFixed(2)}**, needs ≤ 1.2)`);
    if (grows) ctx.problems.push(`dispatcher database ${what} keeps growing: max of the last third ${maxLast} > 1.2 × ${maxMiddle} (middle third)`);
  }
  try {
    const oldest = await bounded(store.events.find({}, { createdAt: 1 }, { createdAt: 1 }, 1), 20_000, 'oldest event');
    if (oldest[0]) ctx.notes.push(`  oldest event document left: ${((Date.now() - (oldest[0].createdAt as Date).getTime()) / 1000).toFixed(0)} s old (retention ${SOAK_RETENTION_SECONDS} s, expired buckets dropped every 10 s)`);
  } catch (err) {
    ctx.notes.push(`  oldest event document: lookup failed (${(err as Error).message})`);
  }

  // 3. The closing SIGKILL: every event acknowledged before it delivered within 30 s of it.
  const pairs = expectedPairs(ctx, report.acked, wsOfRid).filter((p) => p.ackAt <= killAt);
  const undelivered = pairs.filter((p) => !receiver.delivered.has(p.key)).length;
  const recovery = pairs.reduce((m, p) => Math.max(m, (receiver.delivered.get(p.key)?.firstAt ?? Infinity) - killAt), 0);
  ctx.notes.push(`  SIGKILL at the end: every delivery acknowledged before it arrived ${undelivered === 0 ? `within **${fmtMs(recovery)}**` : `— NOT: ${undelivered} never did`} (needs < 30 s)`);
  if (undelivered === 0 && recovery >= 30_000) ctx.problems.push(`recovery after the closing SIGKILL took ${fmtMs(recovery)} (≥ 30 s)`);
  extraReports.push(`soak: ${SOAK_MINUTES} min at ${SOAK_RATE}/s; throughput last/first ${(ratio * 100).toFixed(1)} %; documents ${samples.map((s) => s.total ?? '?').join(' ')}; SIGKILL recovery ${undelivered === 0 ? fmtMs(recovery) : `${undelivered} undelivered`}`);
  await checkIdempotency(ctx, plan(name, ctx.workspaces, 200), report.acked);
  ctx.modes.clear();
  report_(ctx, row);
}

const mb = (b: number | undefined) => (b === undefined ? '?' : `${(b / 1_048_576).toFixed(1)} MB`);

// ---- run --------------------------------------------------------------------------------
// Order: the load scenarios, backlog, malformed, then soak (last: it replaces the dispatchers by
// short-retention ones on a database of their own). Soak runs only in full mode or when named.
const selected = [...scenarios.map((s) => s.name), 'backlog', 'malformed', 'soak'].filter((n) => (ONLY.length === 0 ? !(QUICK && n === 'soak') : ONLY.includes(n)));
// Watchdog: the whole run is bounded (quick 25 min, full 75 min, + the soak's minutes); on expiry print what we have and fail.
const WATCHDOG_MS = (num('RELIABILITY_MAX_MINUTES', 25, 75) + (selected.includes('soak') ? SOAK_MINUTES + 10 : 0)) * 60_000;
setTimeout(() => {
  console.log(`\nWATCHDOG: the suite did not finish within ${WATCHDOG_MS / 60_000} min; results so far:`);
  printTable(rows);
  for (const p of allProblems) console.log(`  - ${p}`);
  process.exit(1);
}, WATCHDOG_MS).unref();

let exitCode = 0;
/** One broken scenario must not hide the others' results. */
async function guarded(name: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    console.log(`  PROBLEM [${name}] scenario aborted: ${(err as Error).stack ?? (err as Error).message}`);
    allProblems.push(`[${name}] scenario aborted: ${(err as Error).message.split('\n')[0]}`);
    await stack.reviveCrashed().catch(() => undefined);
  }
}
try {
  for (const def of scenarios) if (selected.includes(def.name)) await guarded(def.name, () => runScenario(def));
  if (selected.includes('backlog')) await guarded('backlog', runBacklog);
  if (selected.includes('malformed')) {
    log('== malformed: random/malformed gRPC requests and Kafka messages interleaved with valid ones');
    const ctx = newCtx('malformed', await makeWorkspaces('malformed', 4));
    ctxByPrefix.set('malformed', ctx);
    const t0 = Date.now();
    const m = await runMalformed({
      ctx,
      grpcCount: MALFORMED_GRPC,
      kafkaCount: MALFORMED_KAFKA,
      eventType: EVENT_TYPE,
      prefix,
      kafkaBrokers: KAFKA_BROKERS,
      ingestAddress: stack.address('ingest'),
      registryAddress,
      dispatcherAddress: stack.address(stack.liveDispatchers()[0]!),
      log,
    });
    extraReports.push(...m.lines);
    for (const l of m.lines) console.log(l);
    // Valid gRPC items are accounted like any event; valid Kafka records by their rid (their event
    // ids are only known from what the receiver got).
    const wsOfRid = new Map<string, Workspace>();
    for (const [rid, wsId] of m.wsOfRid) wsOfRid.set(rid, ctx.workspaces.find((w) => w.id === wsId)!);
    const kafkaPending = () =>
      [...m.kafkaValid].flatMap(([rid, wsId]) =>
        ctx.workspaces.find((w) => w.id === wsId)!.endpoints.filter((e) => ![...(receiver.idsOfRid.get(rid) ?? [])].some((id) => receiver.delivered.has(`${e.path} ${id}`))).map((e) => `${rid} → ${e.path}`),
      );
    const row = await finish(ctx, t0, { published: m.published, acked: m.acked, unacked: new Map() }, wsOfRid, {});
    // Kafka-path valid records: wait (bounded) for each to reach every endpoint.
    const end = Date.now() + 60_000;
    while (kafkaPending().length > 0 && Date.now() < end) await sleep(500);
    const kMissing = kafkaPending();
    const kExpected = [...m.kafkaValid].reduce((n, [, wsId]) => n + ctx.workspaces.find((w) => w.id === wsId)!.endpoints.length, 0);
    row.published += m.kafkaValid.size;
    row.acked += m.kafkaValid.size;
    row.expected += kExpected;
    row.delivered += kExpected - kMissing.length;
    row.missing += kMissing.length;
    if (kMissing.length > 0) ctx.problems.push(`${kMissing.length} valid Kafka-ingested records never delivered, e.g. ${kMissing.slice(0, 10).join(', ')}`);
    ctx.problems.push(...m.problems);
    report_(ctx, row);
  }
  if (selected.includes('soak')) await guarded('soak', runSoak);
} catch (err) {
  console.error('suite aborted:', err);
  allProblems.push(`suite aborted: ${(err as Error).message}`);
}

// ---- summary -------------------------------------------------------------------------------
console.log(`\n==== results (${QUICK ? 'quick' : 'full'} mode, ${Math.round((Date.now() - suiteStart) / 1000)} s, receiver: ${receiver.requests} requests, ${receiver.badSignatures} bad signatures, answers ${JSON.stringify(Object.fromEntries(receiver.statusCounts))}) ====`);
printTable(rows);
if (receiver.badSignatures > 0) allProblems.push(`${receiver.badSignatures} deliveries with a bad X-Signature-256, e.g. ${receiver.badSignatureSamples.join(', ')}`);
const lost = rows.reduce((n, r) => n + r.missing, 0);
if (allProblems.length > 0) {
  console.log(`\n${allProblems.length} problem(s):`);
  for (const p of allProblems) console.log(`  - ${p}`);
  exitCode = 1;
} else console.log('\nno problems: every acknowledged event was delivered, nothing stuck, every service SERVING');
if (lost > 0) console.log(`LOSS: ${lost} acknowledged deliveries missing`);
// One closing line per run, read by `npm test` (which runs a subset in CI): a scenario passes when
// it reported a row and no problem; problems of the whole run (bad signatures) fail every scenario.
const runWide = allProblems.filter((p) => !p.startsWith('['));
const passedScenarios = selected.filter((n) => rows.some((r) => r.scenario === n) && runWide.length === 0 && !allProblems.some((p) => p.startsWith(`[${n}]`)));
console.log(`fault scenarios: ${passedScenarios.length} passed, ${selected.length - passedScenarios.length} failed`);
writeFileSync(
  path.join(STATE_DIR, 'results.json'),
  JSON.stringify({ mode: QUICK ? 'quick' : 'full', at: new Date().toISOString(), seconds: Math.round((Date.now() - suiteStart) / 1000), rows, problems: allProblems, malformed: extraReports }, null, 2),
);
try {
  writeFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), 'last-results.md'), [`Last run: ${new Date().toISOString()}, ${QUICK ? '--quick' : 'full'} mode, ${Math.round((Date.now() - suiteStart) / 1000)} s`, '', ...tableLines(rows), '', ...extraReports.map((l) => l.replace(/^ {2}/, '')), '', allProblems.length ? `Problems:\n${allProblems.map((p) => `- ${p}`).join('\n')}` : 'No problems.', ''].join('\n'));
} catch {
  /* read-only checkout */
}

registry.close();
publisher.close();
await store.conn.close().catch(() => undefined);
await admin.disconnect().catch(() => undefined);
await stack.stopAll();
await receiver.stop();
rmSync(pki.dir, { recursive: true, force: true });
process.exit(exitCode);

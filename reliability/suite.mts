// The fault-injection suite (issue 10): "accepted means delivered or visibly failed".
// Run through reliability/run.sh (`npm run test:faults [-- --quick] [-- --only=a,b]`), which
// starts a private Kafka + FerretDB and exports KAFKA_BROKERS, MONGODB_URI and the HOOKLINE_*
// settings this file uses to stop and restart them.
//
// One stack for the whole run (registry, ingest, 2-3 dispatchers as processes, one HTTPS
// receiver). Each scenario gets fresh workspaces and endpoints (a path each), publishes a steady
// stream with idempotency keys while its faults fire, then waits until every acknowledged event
// reached every endpoint of its workspace (or a deadline), and checks: missing pairs, duplicates,
// stuck deliveries in the dispatcher's database, crashes, SERVING again. Exit 1 on any problem.
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import mongoose from 'mongoose';
import { endpointsV1 } from '@hookline/proto';
import { isolatedServiceEnv, makeTestPki, rpc, uniquePrefix } from '@hookline/testing';
import { RecordingReceiver, type Behaviour } from './receiver.mts';
import { Publisher, type Ack, type PlannedEvent, type PublishReport } from './publisher.mts';
import { accessMode, clientCredentials, infraScript, sleep, Stack } from './stack.mts';
import { runMalformed } from './malformed.mts';

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
const dispatcherEnv: Record<string, string> = {
  ...base,
  ...allow,
  MONGODB_DATABASE: `${prefix}_dispatcher`,
  REGISTRY_ADDRESS: registryAddress,
  NODE_EXTRA_CA_CERTS: pki.caFile,
  // 10 s, not the 3 s one would like for fast recovery: at 3 s the FerretDB lost-update race
  // (README "Findings") turns into a storm of re-deliveries that swamps every later scenario.
  LEASE_MS: String(num('RELIABILITY_LEASE_MS', 10_000, 10_000)),
  SCHEDULER_INTERVAL_MS: '250',
  KAFKA_SESSION_TIMEOUT_MS: '6000',
  ATTEMPT_TIMEOUT_MS: String(ATTEMPT_TIMEOUT_MS),
  // ~60 s of retries: long enough to outlive every fault below, so "missing" means lost, not
  // "retries exhausted" (which would be a visible failure, reported in its own column).
  RETRY_SCHEDULE: '500ms,1s,2s,2s,3s,3s,3s,3s,5s,5s,5s,5s,5s,5s,5s,5s',
};
await Promise.all([
  stack.add('ingest', 'event-ingest', { ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress }),
  ...Array.from({ length: DISPATCHERS }, () => stack.addDispatcher(dispatcherEnv)),
]);
log(`services up (${accessMode}): ${stack.names().map((n) => `${n}@${stack.port(n)}`).join(' ')}`);

const registry = new endpointsV1.EndpointRegistryServiceClient(registryAddress, clientCredentials());
const publisher = new Publisher(stack.address('ingest'));
// Every query of the suite is bounded: a wedged database (finding 4) must fail the run, not hang it.
const db = mongoose.createConnection(MONGODB_URI, { dbName: `${prefix}_dispatcher`, serverSelectionTimeoutMS: 5_000, socketTimeoutMS: 20_000 });
await db.asPromise();
const deliveries = db.collection('deliveries');
const eventsColl = db.collection('events');

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

async function makeWorkspaces(name: string, count = WORKSPACES): Promise<Workspace[]> {
  const out: Workspace[] = [];
  for (let w = 0; w < count; w++) {
    const ws: Workspace = { id: `ws_${prefix}_${name}_${w}`, endpoints: [] };
    for (let e = 0; e < (w % 2 === 0 ? 2 : 1); e++) {
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

function plan(name: string, workspaces: Workspace[], n: number): PlannedEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const ws = workspaces[i % workspaces.length]!;
    const rid = `${name}-${i}`;
    return { workspaceId: ws.id, eventType: EVENT_TYPE, key: `key-${rid}`, rid, payload: Buffer.from(JSON.stringify({ rid, n: i, pad: 'x'.repeat(200) })) };
  });
}

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
/** The live dispatcher holding the most leased pending deliveries (else any live one). */
async function busiestDispatcher(): Promise<string> {
  const live = stack.liveDispatchers();
  const counts = new Map<string, number>();
  try {
    const docs = await bounded(deliveries.find({ state: 'pending', leaseOwner: { $ne: '' } }, { projection: { leaseOwner: 1 } }).limit(500).toArray(), 5_000);
    for (const d of docs) {
      const owner = String(d.leaseOwner);
      const name = live.find((n) => owner.includes(`-${stack.pid(n)}-`));
      if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  } catch {
    /* database down: any replica */
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? live[Math.floor(Math.random() * live.length)]!;
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

async function pendingCount(ctx: Ctx): Promise<number | undefined> {
  try {
    return await bounded(deliveries.countDocuments({ workspaceId: { $in: ctx.workspaces.map((w) => w.id) }, state: 'pending' }));
  } catch {
    return undefined;
  }
}

/** Waits until every expected pair arrived and nothing of the scenario is pending (or the deadline). */
async function settle(ctx: Ctx, pairs: Pair[], deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  let lastLog = 0;
  while (Date.now() < end) {
    const missing = pairs.filter((p) => !receiver.delivered.has(p.key)).length;
    const pending = missing === 0 ? await pendingCount(ctx) : undefined;
    if (missing === 0 && pending === 0) return;
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log(`  waiting: ${missing} of ${pairs.length} deliveries missing${pending !== undefined ? `, ${pending} pending in the database` : ''}`);
    }
    await sleep(500);
  }
}

async function explainMissing(ctx: Ctx, missing: Pair[]): Promise<string[]> {
  const lines: string[] = [];
  for (const p of missing.slice(0, 20)) {
    let where = '';
    try {
      const d = await bounded(deliveries.findOne({ _id: `${p.eventId}|${p.endpoint.id}` as never }), 5_000);
      if (d) where = `delivery state=${d.state} attempts=${d.attemptCount} lastError=${JSON.stringify(d.lastError)} leaseOwner=${d.leaseOwner || '-'} next=${d.nextAttemptAt?.toISOString?.() ?? d.nextAttemptAt}`;
 else where = (await bounded(eventsColl.findOne({ _id: p.eventId as never }), 5_000)) ? 'event stored in the dispatcher but no delivery record for this endpoint' : 'never reached the dispatcher (no event, no delivery record)';
    } catch (err) {
      where = `(database lookup failed: ${(err as Error).message})`;
      lines.push(`    missing ${p.eventId} → ${p.endpoint.path} (rid ${p.rid}): ${where}`);
      lines.push(`    … ${missing.length - 1} more not looked up: the dispatcher database does not answer`);
      return lines;
    }
    lines.push(`    missing ${p.eventId} → ${p.endpoint.path} (rid ${p.rid}, acked ${new Date(p.ackAt).toISOString()}): ${where}`);
  }
  if (missing.length > 20) lines.push(`    … and ${missing.length - 20} more`);
  return lines;
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

async function finish(ctx: Ctx, t0: number, report: Pick<PublishReport, 'published' | 'acked' | 'unacked'>, wsOfRid: Map<string, Workspace>, opts: { noDuplicates?: boolean; latency?: boolean }): Promise<Row> {
  const pairs = expectedPairs(ctx, report.acked, wsOfRid);
  await settle(ctx, pairs, SETTLE_MS);
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
  // Stuck: due but unattempted for > 10 s, or any pending left after settling; visibly failed.
  let stuck = 0;
  let failed = 0;
  try {
    const ws = ctx.workspaces.map((w) => w.id);
    const stuckDocs = await bounded(deliveries.find({ workspaceId: { $in: ws }, state: 'pending', nextAttemptAt: { $lt: new Date(Date.now() - 10_000) } }).toArray());
    stuck = stuckDocs.length;
    for (const d of stuckDocs.slice(0, 5)) {
      const { _id, attemptCount, nextAttemptAt, leaseOwner, leaseUntil, verify, lastError, updatedAt } = d as Record<string, unknown>;
      ctx.notes.push(`  stuck: ${JSON.stringify({ _id, attemptCount, nextAttemptAt, leaseOwner, leaseUntil, verify, lastError, updatedAt, now: new Date() })}`);
    }
    failed = await bounded(deliveries.countDocuments({ workspaceId: { $in: ws }, state: 'failed' }));
    const pendingLeft = await bounded(deliveries.countDocuments({ workspaceId: { $in: ws }, state: 'pending' }));
    if (pendingLeft > 0) ctx.notes.push(`${pendingLeft} deliveries still pending after settling`);
  } catch (err) {
    ctx.problems.push(`could not query the dispatcher database: ${(err as Error).message}`);
  }
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
    ctx.notes.push(...(await explainMissing(ctx, missing)));
  }
  if (stuck > 0) ctx.problems.push(`${stuck} deliveries due for more than 10 s but not attempted (stuck)`);
  if (failed > 0) ctx.problems.push(`${failed} deliveries visibly failed (retries exhausted) although every fault ends within the retry budget`);
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

// ---- run --------------------------------------------------------------------------------
// Watchdog: the whole run is bounded (quick 25 min, full 75 min); on expiry print what we have and fail.
const WATCHDOG_MS = num('RELIABILITY_MAX_MINUTES', 25, 75) * 60_000;
setTimeout(() => {
  console.log(`\nWATCHDOG: the suite did not finish within ${WATCHDOG_MS / 60_000} min; results so far:`);
  printTable(rows);
  for (const p of allProblems) console.log(`  - ${p}`);
  process.exit(1);
}, WATCHDOG_MS).unref();

const selected = [...scenarios.map((s) => s.name), 'malformed'].filter((n) => ONLY.length === 0 || ONLY.includes(n));
let exitCode = 0;
try {
  for (const def of scenarios) {
    if (!selected.includes(def.name)) continue;
    try {
      await runScenario(def);
    } catch (err) {
      // One broken scenario must not hide the others' results.
      console.log(`  PROBLEM [${def.name}] scenario aborted: ${(err as Error).message}`);
      allProblems.push(`[${def.name}] scenario aborted: ${(err as Error).message.split('\n')[0]}`);
      await stack.reviveCrashed().catch(() => undefined);
    }
  }
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
await db.close().catch(() => undefined);
await stack.stopAll();
await receiver.stop();
rmSync(pki.dir, { recursive: true, force: true });
process.exit(exitCode);

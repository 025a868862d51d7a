// Dispatchers as a consumer group, as processes: two share the load; SIGKILL of one mid-stream
// loses nothing (its partitions move and their uncommitted records, of the events topic and of
// the retry tiers, are read again by the survivor); SIGTERM hands queued and in-flight work to
// the shortest retry tier at once and exits cleanly.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import mongoose from 'mongoose';
import { endpointsV1, eventsV1 } from '@hookline/proto';
import {
  eventually,
  infraFromEnv,
  isolatedServiceEnv,
  makeTestPki,
  rpc,
  startService,
  TestReceiver,
  uniquePrefix,
  type ServiceProcess,
  type TestPki,
} from '@hookline/testing';

jest.setTimeout(150_000);

const EVENT_TYPE = 'shipment.sent';
const attemptsLogged = (s: ServiceProcess) => (s.output().match(/"msg":"delivery attempt"/g) ?? []).length;

describe('dispatcher replicas', () => {
  const infra = infraFromEnv();
  const prefix = uniquePrefix('e2ed');
  let pki: TestPki;
  let receiver: TestReceiver;
  const all: ServiceProcess[] = [];
  let registry: endpointsV1.EndpointRegistryServiceClient;
  let ingest: eventsV1.EventIngestServiceClient;
  let db: mongoose.Connection;
  let dispatcherEnv: Record<string, string>;
  const workspaces = Array.from({ length: 8 }, (_, i) => `ws_${prefix}_${i}`);
  const published: string[] = [];
  const arrived = () => new Set(receiver.requests.filter((r) => r.path === '/fast').map((r) => r.headers['x-webhook-id']));

  const publish = async (workspaceId: string, path = 'fast') => {
    const res = await rpc(ingest.publishEvent.bind(ingest), { event: { workspaceId, eventType: EVENT_TYPE, payload: Buffer.from(JSON.stringify({ shipment_id: `s${published.length}`, path })), idempotencyKey: '' } });
    return res.eventId;
  };
  const startDispatcher = async () => {
    const d = await startService('dispatcher', dispatcherEnv);
    all.push(d);
    return d;
  };

  beforeAll(async () => {
    pki = makeTestPki();
    receiver = new TestReceiver(pki);
    await receiver.start();
    const base = isolatedServiceEnv(infra, prefix);
    const reg = await startService('endpoint-registry', {
      ...base,
      TARGET_ALLOWLIST: 'localhost,127.0.0.1/32',
      MONGODB_DATABASE: `${prefix}_registry`,
      SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    });
    all.push(reg);
    const registryAddress = `127.0.0.1:${reg.port}`;
    dispatcherEnv = {
      ...base,
      TARGET_ALLOWLIST: '127.0.0.1/32',
      MONGODB_DATABASE: `${prefix}_dispatcher`,
      REGISTRY_ADDRESS: registryAddress,
      NODE_EXTRA_CA_CERTS: pki.caFile,
      KAFKA_TOPIC_OPERATIONS: `${prefix}.operations`,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      MAX_IN_FLIGHT_PER_ENDPOINT: '2',
      RETRY_SCHEDULE: '500ms,1s,1s',
      // Queued deliveries stay in the memory of the replica that read them for 10 s (the SIGTERM
      // test hands them back before that); records read again after the SIGKILL wait 10 + 3 + 1 s.
      SPILL_AFTER_MS: '10000',
      ATTEMPT_TIMEOUT_MS: '3000',
    };
    const [ing] = await Promise.all([startService('event-ingest', { ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registryAddress }), startDispatcher(), startDispatcher()]);
    all.push(ing);
    const creds = grpc.credentials.createInsecure();
    registry = new endpointsV1.EndpointRegistryServiceClient(registryAddress, creds);
    ingest = new eventsV1.EventIngestServiceClient(`127.0.0.1:${ing.port}`, creds);
    db = mongoose.createConnection(infra.mongoUri, { dbName: `${prefix}_dispatcher` });
    await db.asPromise();
    await rpc(registry.createEventType.bind(registry), { name: EVENT_TYPE, description: 'A shipment left', schemaJson: '{"type":"object"}', exampleJson: '{"shipment_id":"s_example"}' });
    for (const ws of workspaces) {
      await rpc(registry.createEndpoint.bind(registry), {
        workspaceId: ws,
        url: receiver.url('/fast'),
        description: 'e2e',
        subscription: { selection: { $case: 'eventTypes', value: { names: [EVENT_TYPE] } } },
        requestId: '',
        standardWebhooks: false,
      });
    }
  });

  afterAll(async () => {
    registry?.close();
    ingest?.close();
    await db?.close();
    await Promise.all(all.map((s) => s.stop()));
    await receiver?.stop();
  });

  it('two dispatchers in one group both deliver; SIGKILL of one mid-stream loses no event', async () => {
    const [a, b] = [all[1]!, all[2]!];
    // Publish round robin over 8 workspaces (8 keys over 4 partitions) until both replicas have
    // delivered some: the group may still be rebalancing when the first events arrive.
    await eventually(async () => {
      for (const ws of workspaces) published.push(await publish(ws));
      return attemptsLogged(a) > 0 && attemptsLogged(b) > 0 ? true : undefined;
    }, 60_000, 'both dispatchers to deliver');
    await eventually(() => (published.every((id) => arrived().has(id)) ? true : undefined), 30_000, 'the first events');
    const before = published.length;

    // Mid-stream: keep publishing, SIGKILL one replica a third of the way through.
    for (let i = 0; i < 60; i++) {
      published.push(await publish(workspaces[i % workspaces.length]!));
      if (i === 20) {
        a.child.kill('SIGKILL');
        expect(await a.stop()).toBeNull(); // killed by the signal, no exit code
      }
    }
    const got = await eventually(() => {
      const s = arrived();
      return published.every((id) => s.has(id)) ? s : undefined;
    }, 60_000, `every one of ${published.length} published events (missing: ${published.filter((id) => !arrived().has(id)).length})`);
    expect(published.length).toBe(before + 60);
    expect(published.every((id) => got.has(id))).toBe(true);
    // Duplicates are allowed (at-least-once); every delivery is recorded as succeeded in `delivered`.
    await eventually(
      async () => {
        const recorded = new Set<string>();
        // `delivered` is a series of time buckets (delivered_b<start>_<size>).
        const buckets = (await db.db!.listCollections({}, { nameOnly: true }).toArray()).filter((c) => /^delivered_b\d+_\d+$/.test(c.name));
        // Its `_id` is `${eventId}|${endpointId}` (the document holds nothing else to query).
        for (const b of buckets) for (const d of await db.collection(b.name).find({}, { projection: { _id: 1 } }).toArray()) recorded.add(String(d._id).split('|')[0]!);
        return published.every((id) => recorded.has(id)) ? true : undefined;
      },
      30_000,
      'every delivery recorded as succeeded',
    );
  });

  it('SIGTERM hands queued and in-flight work back at once and exits 0; the other replica delivers it', async () => {
    const c = await startDispatcher(); // replaces the killed one
    const survivors = [all[2]!, c];
    const ws = `ws_${prefix}_slow`;
    receiver.behaviour.set('/slow', { status: 200, delayMs: 2_000 });
    await rpc(registry.createEndpoint.bind(registry), {
      workspaceId: ws,
      url: receiver.url('/slow'),
      description: 'e2e slow',
      subscription: { selection: { $case: 'eventTypes', value: { names: [EVENT_TYPE] } } },
      requestId: '',
      standardWebhooks: false,
    });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await publish(ws, 'slow'));
    // With 2 in flight per endpoint and 2 s per answer, most are still queued, in memory, in the
    // replica that read them: the one whose log shows the first attempts.
    const attemptedBy = (s: ServiceProcess) => ids.some((id) => s.output().includes(`"eventId":"${id}"`));
    const holder = await eventually(() => survivors.find(attemptedBy), 30_000, 'the first slow attempts');
    const other = survivors.find((s) => s !== holder)!;

    expect(await holder.stop('SIGTERM')).toBe(0);
    // Queued work went to the shortest retry tier (due at once), in-flight work finished within
    // the deadline; the other replica takes it from the tier.
    expect(holder.output()).toMatch(/"handedBackQueued":[1-9]\d*[^\n]*delivery engine stopped/);

    const got = await eventually(() => {
      const s = new Set(receiver.requests.filter((r) => r.path === '/slow').map((r) => r.headers['x-webhook-id']));
      return ids.every((id) => s.has(id)) ? s : undefined;
    }, 60_000, 'every slow event');
    expect(got.size).toBe(ids.length);
    expect(attemptsLogged(other)).toBeGreaterThan(0);
  });
});

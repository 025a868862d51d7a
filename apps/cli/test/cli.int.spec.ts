// The hookline binary (apps/cli/dist/main.js, run as its own process) against the whole stack
// started as processes: registry, ingest, dispatcher, the real broker and database, and an HTTPS
// receiver. Checks stdout, stderr, --json and exit codes for success and each kind of bad input:
// usage errors (2), refusals with field violations (1), unreachable services (3).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import {
  eventually,
  infraFromEnv,
  isolatedServiceEnv,
  makeTestPki,
  REPO_ROOT,
  startService,
  TestReceiver,
  uniquePrefix,
  type ReceivedRequest,
  type ServiceProcess,
  type TestPki,
} from '@hookline/testing';

jest.setTimeout(60_000);

const BIN = path.join(REPO_ROOT, 'apps', 'cli', 'dist', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('hookline CLI against the running stack', () => {
  const infra = infraFromEnv();
  const prefix = uniquePrefix('cli');
  const workspace = `ws_${prefix}`;
  let pki: TestPki;
  let receiver: TestReceiver;
  const services: ServiceProcess[] = [];
  let env: Record<string, string>;
  let closedPort: number;

  /** Runs the binary; the workspace and addresses come from the environment unless overridden. */
  function hookline(args: string[], extraEnv: Record<string, string> = {}, input?: string): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(input ?? '');
    });
  }
  const json = (r: Run) => JSON.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

  beforeAll(async () => {
    pki = makeTestPki();
    receiver = new TestReceiver(pki);
    await receiver.start();
    const base = isolatedServiceEnv(infra, prefix);
    const allow = { TARGET_ALLOWLIST: 'localhost,127.0.0.1/32,::1/128' };
    const reg = await startService('endpoint-registry', { ...base, ...allow, MONGODB_DATABASE: `${prefix}_registry`, SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}` });
    services.push(reg);
    const registry = `127.0.0.1:${reg.port}`;
    const [ing, dis] = await Promise.all([
      startService('event-ingest', { ...base, MONGODB_DATABASE: `${prefix}_ingest`, REGISTRY_ADDRESS: registry }),
      // One quick retry, then the delivery is failed: `recover` has something to re-send.
      startService('dispatcher', {
        ...base,
        ...allow,
        MONGODB_DATABASE: `${prefix}_dispatcher`,
        REGISTRY_ADDRESS: registry,
        NODE_EXTRA_CA_CERTS: pki.caFile,
        RETRY_SCHEDULE: '200ms',
        RETRY_JITTER_PERCENT: '0',
        SCHEDULER_INTERVAL_MS: '200',
        SUBSCRIBER_CACHE_MS: '0',
      }),
    ]);
    services.push(ing, dis);
    env = {
      PATH: process.env.PATH ?? '',
      HOOKLINE_REGISTRY: registry,
      HOOKLINE_INGEST: `127.0.0.1:${ing.port}`,
      HOOKLINE_DISPATCHER: `127.0.0.1:${dis.port}`,
      HOOKLINE_WORKSPACE: workspace,
    };
    // A port nothing listens on: bind, note, close.
    closedPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  });

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await receiver?.stop();
  });

  const schema = { type: 'object', required: ['invoice_id', 'amount'], properties: { invoice_id: { type: 'string' }, amount: { type: 'integer', minimum: 0 } } };

  describe('usage errors exit 2 without calling a server', () => {
    it.each([
      [[], /usage: hookline/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['endpoints', 'frob'], /unknown endpoints command "frob"/],
      [['endpoints', 'get'], /missing <endpoint-id>/],
      [['endpoints', 'get', 'a', 'b'], /unexpected argument "b"/],
      [['endpoints', 'create'], /--url is required/],
      [['endpoints', 'list', '--bogus'], /Unknown option '--bogus'/],
      [['endpoints', 'update', 'ep_1'], /nothing to update/],
      [['endpoints', 'create', '--url', 'https://x.example', '--events', 'a', '--all-events'], /not both/],
      [['endpoints', 'list', '--page-size', '0'], /--page-size: must be a whole number from 1 to 500/],
      [['endpoints', 'rotate-secret', 'ep_1', '--old-secret-ttl', 'soon'], /--old-secret-ttl: "soon" is not a duration/],
      [['recover', 'ep_1', '--since', 'yesterday'], /--since: "yesterday" is neither a time/],
      [['attempts', 'list', 'ep_1', '--kind', 'both'], /--kind: "both" is not live or test/],
      [['deliveries', 'list', 'ep_1', '--state', 'done'], /--state: "done" is not pending, succeeded or failed/],
      [['events', 'publish', 'invoice.paid', '--data', '@/nonexistent/payload.json'], /--data: cannot read \/nonexistent\/payload.json: ENOENT/],
      [['endpoints', 'list', '--registry', 'not an address'], /--registry: "not an address" is not host:port/],
      [['verify', '--body', '/dev/null'], /--secret or HOOKLINE_SECRET/],
    ])('%j', async (args, message) => {
      const r = await hookline(args as string[]);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(2);
    });

    it('needs a workspace for workspace-scoped commands', async () => {
      const r = await hookline(['endpoints', 'list'], { HOOKLINE_WORKSPACE: '' });
      expect(r.stderr).toMatch(/no workspace: give --workspace ID or set HOOKLINE_WORKSPACE/);
      expect(r.code).toBe(2);
    });

    it('prints help with exit 0, and usage errors as JSON with --json', async () => {
      const help = await hookline(['endpoints', 'create', '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/usage: hookline endpoints create --url URL/);
      const top = await hookline(['--help']);
      expect(top.code).toBe(0);
      expect(top.stdout).toMatch(/exit codes: 0 ok, 1 refused/);
      const j = await hookline(['endpoints', 'get', '--json']);
      expect(j.code).toBe(2);
      expect(JSON.parse(j.stderr)).toEqual({ error: { kind: 'usage', message: 'missing <endpoint-id>' } });
    });
  });

  it('exits 3 when a service is unreachable, naming it and its address', async () => {
    const r = await hookline(['endpoints', 'list', '--registry', `127.0.0.1:${closedPort}`, '--timeout', '3s']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`cannot reach endpoint-registry at 127.0.0.1:${closedPort}: UNAVAILABLE`));
    const j = await hookline(['events', 'validate', 'x.y', '--data', '{}', '--json'], { HOOKLINE_INGEST: `127.0.0.1:${closedPort}` });
    expect(j.code).toBe(3);
    expect(JSON.parse(j.stderr).error).toMatchObject({ kind: 'unreachable', code: 'UNAVAILABLE' });
  });

  it('manages the event-type catalog, with refusals exiting 1 and listing field violations', async () => {
    const schemaFile = path.join(pki.dir, 'schema.json');
    writeFileSync(schemaFile, JSON.stringify(schema));
    const created = await hookline(['event-types', 'create', 'invoice.paid', '--schema', `@${schemaFile}`, '--example', '{"invoice_id":"in_1","amount":100}', '--description', 'An invoice was paid']);
    expect(created.stderr).toBe('');
    expect(created.stdout).toBe('created event type invoice.paid (version 1)\n');
    expect(created.code).toBe(0);

    const again = await hookline(['event-types', 'create', 'invoice.paid', '--schema', `@${schemaFile}`, '--example', '{"invoice_id":"in_1","amount":100}']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: ALREADY_EXISTS: /);

    const bad = await hookline(['event-types', 'create', 'Bad Name', '--schema', '{"type":"object"}', '--example', '[1]']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: INVALID_ARGUMENT: /);
    expect(bad.stderr).toMatch(/\n {2}- name: /);

    // stdin works for one input
    const fromStdin = await hookline(['event-types', 'create', 'invoice.voided', '--schema', '-', '--example', '{"invoice_id":"in_2"}'], {}, '{"type":"object"}');
    expect(fromStdin.code).toBe(0);

    const list = await hookline(['event-types', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+VERSION\s+DEPRECATED\s+DESCRIPTION$/);
    expect(list.stdout).toMatch(/invoice\.paid\s+1\s+no\s+An invoice was paid/);
    const listJson = json(await hookline(['event-types', 'list', '--json']));
    expect(listJson.eventTypes.map((t: { name: string }) => t.name)).toEqual(['invoice.paid', 'invoice.voided']);

    const got = await hookline(['event-types', 'get', 'invoice.paid']);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/^Name:\s+invoice\.paid$/m);
    expect(got.stdout).toContain('"minimum": 0');
    const missing = await hookline(['event-types', 'get', 'nope.nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: NOT_FOUND: /);
  });

  describe('endpoints, events, test sends, attempts, verify, recover', () => {
    let endpointId = '';
    let secret = '';

    it('creates, lists, gets, updates, subscribes and rotates an endpoint', async () => {
      const created = await hookline(['endpoints', 'create', '--url', receiver.url('/hook'), '--description', 'cli receiver', '--events', 'invoice.paid', '--json']);
      expect(created.code).toBe(0);
      const body = json(created);
      endpointId = body.endpoint.id;
      secret = body.secret;
      expect(endpointId).toMatch(/^ep_/);
      expect(secret).toMatch(/^whsec_/);
      expect(body.endpoint).toMatchObject({ url: receiver.url('/hook'), description: 'cli receiver', enabled: true, subscription: { eventTypes: { names: ['invoice.paid'] } } });

      const human = await hookline(['endpoints', 'create', '--url', receiver.url('/other')]);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/^ID:\s+ep_\w+$/m);
      expect(human.stdout).toMatch(/^Events:\s+all events$/m);
      expect(human.stdout).toMatch(/^Secret:\s+whsec_\S+$/m);
      expect(human.stderr).toMatch(/shown only now/);

      const refused = await hookline(['endpoints', 'create', '--url', 'http://example.com/hook']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^error: INVALID_ARGUMENT: /);
      expect(refused.stderr).toMatch(/^ {2}- url: .*https/im);
      const refusedJson = await hookline(['endpoints', 'create', '--url', 'http://example.com/hook', '--json']);
      expect(refusedJson.code).toBe(1);
      expect(refusedJson.stdout).toBe('');
      const err = JSON.parse(refusedJson.stderr).error;
      expect(err).toMatchObject({ kind: 'refused', code: 'INVALID_ARGUMENT' });
      expect(err.fieldViolations[0].field).toBe('url');

      const unknownType = await hookline(['endpoints', 'create', '--url', receiver.url('/x'), '--events', 'nope.nope']);
      expect(unknownType.code).toBe(1);
      expect(unknownType.stderr).toMatch(/^ {2}- subscription\.event_types\.names: unknown event types .*nope\.nope$/m);

      const list = await hookline(['endpoints', 'list']);
      expect(list.code).toBe(0);
      const lines = list.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^ID\s+URL\s+ENABLED\s+EVENTS\s+DESCRIPTION$/);
      expect(lines).toHaveLength(3);
      expect(lines[1]).toMatch(new RegExp(`^${endpointId}\\s+https://localhost:\\d+/hook\\s+yes\\s+invoice\\.paid\\s+cli receiver$`));
      expect(json(await hookline(['endpoints', 'list', '--json'])).endpoints).toHaveLength(2);
      const paged = await hookline(['endpoints', 'list', '--page-size', '1']);
      expect(paged.stdout.trim().split('\n')).toHaveLength(2);
      expect(paged.stderr).toMatch(/^more: --page-token \S+/);

      const got = await hookline(['endpoints', 'get', endpointId]);
      expect(got.code).toBe(0);
      expect(got.stdout).toMatch(/^Standard Webhooks:\s+no$/m);
      expect(got.stdout).not.toContain('whsec_');
      const other = await hookline(['endpoints', 'get', endpointId, '--workspace', 'ws_someone_else']);
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/^error: NOT_FOUND: /);

      const updated = await hookline(['endpoints', 'update', endpointId, '--description', 'renamed', '--standard-webhooks', '--json']);
      expect(updated.code).toBe(0);
      expect(json(updated).endpoint).toMatchObject({ description: 'renamed', standardWebhooks: true });
      const off = await hookline(['endpoints', 'update', endpointId, '--no-standard-webhooks']);
      expect(off.stdout).toMatch(/^Standard Webhooks:\s+no$/m);
      const badUpdate = await hookline(['endpoints', 'update', endpointId, '--url', 'ftp://x']);
      expect(badUpdate.code).toBe(1);
      expect(badUpdate.stderr).toMatch(/- url: /);

      const sub = await hookline(['endpoints', 'subscribe', endpointId, '--events', 'invoice.paid,invoice.voided']);
      expect(sub.code).toBe(0);
      expect(sub.stdout).toBe(`${endpointId} now receives: invoice.paid, invoice.voided\n`);
      expect((await hookline(['endpoints', 'subscribe', endpointId])).code).toBe(2);

      const rotated = await hookline(['endpoints', 'rotate-secret', endpointId, '--json']);
      expect(rotated.code).toBe(0);
      expect(json(rotated).secret).toMatch(/^whsec_/);
      expect(json(rotated).secret).not.toBe(secret);
      secret = json(rotated).secret;
      const tooLong = await hookline(['endpoints', 'rotate-secret', endpointId, '--old-secret-ttl', '30d']);
      expect(tooLong.code).toBe(1);
      expect(tooLong.stderr).toMatch(/- old_secret_ttl: /);

      const gone = json(await hookline(['endpoints', 'create', '--url', receiver.url('/gone'), '--json'])).endpoint.id;
      expect((await hookline(['endpoints', 'delete', gone])).stdout).toBe(`deleted ${gone}\n`);
      expect((await hookline(['endpoints', 'get', gone])).code).toBe(1);
    });

    it('validates and publishes events; the delivery verifies with `hookline verify`', async () => {
      const ok = await hookline(['events', 'validate', 'invoice.paid', '--data', '{"invoice_id":"in_9","amount":9}']);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toBe('valid: the payload matches invoice.paid\n');
      const bad = await hookline(['events', 'validate', 'invoice.paid', '--data', '{"invoice_id":"in_9","amount":-1}']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/^error: INVALID_ARGUMENT: /);
      expect(bad.stderr).toMatch(/^ {2}- event\.payload\/amount: must be >= 0$/m);
      const unknown = await hookline(['events', 'validate', 'nope.nope', '--data', '{}']);
      expect(unknown.code).toBe(1);

      const payloadFile = path.join(pki.dir, 'payload.json');
      writeFileSync(payloadFile, '{"invoice_id":"in_42","amount":4200}');
      const published = await hookline(['events', 'publish', 'invoice.paid', '--data', `@${payloadFile}`, '--idempotency-key', `order-42-${prefix}`]);
      expect(published.code).toBe(0);
      const eventId = /^published (evt_[0-9a-f]{32})$/m.exec(published.stdout)?.[1];
      expect(eventId).toBeDefined();
      const dup = await hookline(['events', 'publish', 'invoice.paid', '--data', `@${payloadFile}`, '--idempotency-key', `order-42-${prefix}`, '--json']);
      expect(json(dup)).toMatchObject({ eventId, duplicate: true });

      const got = await eventually(() => receiver.on('/hook').find((r) => r.headers['x-webhook-id'] === eventId), 30_000, 'the delivery');
      const saved = saveRequest(got, 'request.http');
      const valid = await hookline(['verify', '--request', saved], { HOOKLINE_SECRET: secret });
      expect(valid.stderr).toBe('');
      expect(valid.stdout).toBe('valid: X-Signature-256 matches\n');
      expect(valid.code).toBe(0);
      const wrong = await hookline(['verify', '--request', saved, '--secret', 'whsec_wrong']);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^invalid: no-match \(X-Signature-256\)/);
      const bodyFile = path.join(pki.dir, 'body.bin');
      writeFileSync(bodyFile, Buffer.concat([got.body, Buffer.from(' ')]));
      const tampered = await hookline(['verify', '--body', bodyFile, '--header', `X-Signature-256: ${got.headers['x-signature-256']}`, '--secret', secret, '--json']);
      expect(tampered.code).toBe(1);
      expect(JSON.parse(tampered.stderr)).toEqual({ error: { kind: 'verification', reason: 'no-match', scheme: 'signature-256' } });
    });

    it('sends test events and prints status and body as the test log shows them', async () => {
      const sent = await hookline(['test-event', 'send', endpointId, 'invoice.paid']);
      expect(sent.code).toBe(0);
      expect(sent.stdout).toMatch(/^Outcome:\s+succeeded$/m);
      expect(sent.stdout).toMatch(/^Status:\s+200$/m);
      expect(sent.stdout).toMatch(/^Response body:\nok\n$/m);

      receiver.behaviour.set('/hook', { status: 503, body: 'down for maintenance' });
      try {
        const failed = await hookline(['test-event', 'send', endpointId, 'invoice.paid', '--json']);
        expect(failed.code).toBe(0);
        expect(json(failed).attempt).toMatchObject({ outcome: 'ATTEMPT_OUTCOME_FAILED', responseStatus: 503, responseBody: 'down for maintenance', kind: 'ATTEMPT_KIND_TEST' });
      } finally {
        receiver.behaviour.delete('/hook');
      }
      const noType = await hookline(['test-event', 'send', endpointId, 'nope.nope']);
      expect(noType.code).toBe(1);
      expect(noType.stderr).toMatch(/^error: NOT_FOUND: event type nope\.nope is not in the catalog$/m);
    });

    it('lists, shows and retries attempts', async () => {
      const list = await hookline(['attempts', 'list', endpointId]);
      expect(list.code).toBe(0);
      expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+TIME\s+KIND\s+EVENT\s+TYPE\s+#\s+STATUS\s+OUTCOME\s+DURATION\s+ERROR$/);
      expect(list.stdout).toMatch(/att_\w+ .* test .* 503\s+failed/);
      const live = json(await hookline(['attempts', 'list', endpointId, '--kind', 'live', '--json'])).attempts as { id: string; eventId: string }[];
      expect(live.length).toBeGreaterThanOrEqual(1);
      const shown = await hookline(['attempts', 'get', live[0]!.id]);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/^ {2}x-signature-256: sha256=[0-9a-f]{64}$/m);
      expect(shown.stdout).toMatch(/^Status:\s+200$/m);
      expect((await hookline(['attempts', 'get', 'att_00000000000000000000000000000000'])).code).toBe(1);

      const before = receiver.on('/hook').length;
      const retried = await hookline(['attempts', 'retry', endpointId, live[0]!.eventId]);
      expect(retried.code).toBe(0);
      expect(retried.stdout).toMatch(new RegExp(`^delivery of ${live[0]!.eventId} to ${endpointId} is pending`));
      await eventually(() => (receiver.on('/hook').length > before ? true : undefined), 20_000, 'the retried delivery');
      const missing = await hookline(['attempts', 'retry', endpointId, 'evt_00000000000000000000000000000000']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^error: NOT_FOUND: /);
    });

    it('recovers failed deliveries with progress output', async () => {
      receiver.behaviour.set('/hook', { status: 500, body: 'broken' });
      const published = json(await hookline(['events', 'publish', 'invoice.paid', '--data', '{"invoice_id":"in_7","amount":7}', '--json']));
      // First attempt plus one 200 ms retry, both failing: the delivery ends failed.
      await eventually(async () => {
        const r = json(await hookline(['attempts', 'list', endpointId, '--event', published.eventId, '--json']));
        return (r.attempts ?? []).length >= 2 ? true : undefined;
      }, 30_000, 'two failed attempts');
      receiver.behaviour.delete('/hook');
      const failedList = await eventually(async () => {
        const r = await hookline(['deliveries', 'list', endpointId, '--state', 'failed', '--event', published.eventId]);
        return r.stdout.includes(published.eventId) ? r : undefined;
      }, 10_000, 'the failed delivery listed');
      expect(failedList.stdout.split('\n')[0]).toMatch(/^EVENT\s+TYPE\s+STATE\s+ATTEMPTS\s+LAST STATUS\s+LAST ATTEMPT\s+NEXT ATTEMPT$/);
      expect(failedList.stdout).toMatch(new RegExp(`^${published.eventId}\\s+invoice\\.paid\\s+failed\\s+2\\s+500\\s`, 'm'));

      const tooOld = await hookline(['recover', endpointId, '--since', '30d']);
      expect(tooOld.code).toBe(1);
      expect(tooOld.stderr).toMatch(/- since: must be within the last 14 days/);

      const recovered = await hookline(['recover', endpointId, '--since', '10m', '--wait', '--wait-timeout', '30s']);
      expect(recovered.stderr).toMatch(/^recovering failed deliveries to ep_\w+ of events since \S+…$/m);
      expect(recovered.stderr).toMatch(/^requeued 1 failed delivery$/m);
      expect(recovered.stderr).toMatch(/^progress: 1\/1 delivered, \d+ failed attempts$/m);
      expect(recovered.stdout).toBe('requeued 1, delivered 1\n');
      expect(recovered.code).toBe(0);
      expect(receiver.on('/hook').filter((r) => r.headers['x-webhook-id'] === published.eventId).length).toBe(3);
      const listed = json(await hookline(['deliveries', 'list', endpointId, '--event', published.eventId, '--json'])).deliveries as { state: string; attemptCount: number }[];
      expect(listed).toEqual([expect.objectContaining({ state: 'DELIVERY_STATE_SUCCEEDED', attemptCount: 3 })]);

      const nothing = await hookline(['recover', endpointId, '--since', '10m', '--json']);
      expect(nothing.code).toBe(0);
      expect(json(nothing)).toEqual({ deliveriesRequeued: 0 });
    });
  });

  function saveRequest(r: ReceivedRequest, name: string): string {
    const file = path.join(pki.dir, name);
    const head = [`${r.method} ${r.path} HTTP/1.1`, ...Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
    writeFileSync(file, Buffer.concat([Buffer.from(head + '\r\n\r\n'), r.body]));
    return file;
  }
});

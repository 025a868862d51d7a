// The stack under test: registry, ingest and N dispatchers as separate processes on fixed
// loopback ports (so a restarted process is found at the same address), plus control of the
// PRIVATE Kafka and FerretDB that reliability/run.sh started (deploy/local/*.sh with the same
// HOOKLINE_* settings; they act only through the pid files of that state dir).
import { execFile } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { makeTestCa, REPO_ROOT, startService, type ServiceProcess } from '@hookline/testing';

/**
 * RELIABILITY_ACCESS=mtls (opt-in): every service serves mutual TLS with caller permissions, as
 * in production; ingest and the dispatchers call the registry with their own certificates and the
 * suite with an all-methods one. Unset: plaintext and open, as before.
 */
const access = process.env.RELIABILITY_ACCESS === 'mtls' ? createAccess() : undefined;

function createAccess() {
  const ca = makeTestCa('faults');
  const server = ca.issue('services', { server: true, client: true });
  const suite = ca.issue('suite', { uri: 'spiffe://hookline/faults-suite' });
  const ingest = ca.issue('ingest', { uri: 'spiffe://hookline/event-ingest' });
  const dispatcher = ca.issue('dispatcher', { uri: 'spiffe://hookline/dispatcher' });
  const registry = 'webhooks.endpoints.v1.EndpointRegistryService';
  const policy = path.join(path.dirname(ca.caFile), 'permissions.json');
  writeFileSync(
    policy,
    JSON.stringify({
      callers: [
        { name: 'faults-suite', certificate: 'spiffe://hookline/faults-suite', methods: ['*'], workspaces: ['*'] },
        { name: 'event-ingest', certificate: 'spiffe://hookline/event-ingest', methods: [`${registry}/GetEventType`], workspaces: ['*'] },
        { name: 'dispatcher', certificate: 'spiffe://hookline/dispatcher', methods: [`${registry}/ResolveSubscribers`, `${registry}/GetEventType`, `${registry}/DisableEndpoint`], workspaces: ['*'] },
      ],
    }),
  );
  const own: Record<string, { certFile: string; keyFile: string }> = { 'event-ingest': ingest, dispatcher };
  return {
    credentials: grpc.credentials.createSsl(Buffer.from(ca.ca), Buffer.from(suite.key), Buffer.from(suite.cert)),
    serviceEnv(service: string): Record<string, string> {
      const id = own[service];
      return {
        GRPC_TLS_CERT_FILE: server.certFile,
        GRPC_TLS_KEY_FILE: server.keyFile,
        GRPC_TLS_CLIENT_CA_FILE: ca.caFile,
        GRPC_PERMISSIONS_FILE: policy,
        ...(id ? { REGISTRY_TLS_CA_FILE: ca.caFile, REGISTRY_TLS_CERT_FILE: id.certFile, REGISTRY_TLS_KEY_FILE: id.keyFile } : {}),
      };
    },
  };
}

/** Credentials for the suite's own gRPC clients (mutual TLS under RELIABILITY_ACCESS=mtls). */
export const clientCredentials = (): grpc.ChannelCredentials => access?.credentials ?? grpc.credentials.createInsecure();
export const accessMode = access ? 'mutual TLS + permissions' : 'plaintext, open';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface Crash {
  name: string;
  at: number;
  code: number | null;
  signal: string | null;
  tail: string;
}

interface Managed {
  name: string;
  service: string;
  env: Record<string, string>;
  port: number;
  proc: ServiceProcess | undefined;
  /** Set right before the suite itself signals the process: its exit is not a crash. */
  expectExit: boolean;
  log: WriteStream;
  starts: number;
}

const HEALTH_PATH = '/grpc.health.v1.Health/Check';

export class Stack {
  readonly crashes: Crash[] = [];
  private readonly managed = new Map<string, Managed>();
  private readonly logDir: string;
  private nextDispatcher = 1;

  constructor(stateDir: string) {
    this.logDir = path.join(stateDir, 'services');
    mkdirSync(this.logDir, { recursive: true });
  }

  /** Registers and starts a service process under `name` on a fixed free port. */
  async add(name: string, service: string, env: Record<string, string>): Promise<Managed> {
    const port = await freePort();
    const m: Managed = { name, service, env: { ...env, ...access?.serviceEnv(service), GRPC_PORT: String(port) }, port, proc: undefined, expectExit: false, log: createWriteStream(path.join(this.logDir, `${name}.log`), { flags: 'a' }), starts: 0 };
    this.managed.set(name, m);
    await this.start(name);
    return m;
  }

  async addDispatcher(env: Record<string, string>): Promise<string> {
    const name = `dispatcher-${this.nextDispatcher++}`;
    await this.add(name, 'dispatcher', env);
    return name;
  }

  async start(name: string): Promise<void> {
    const m = this.managed.get(name)!;
    if (this.alive(name)) await this.signal(name, 'SIGKILL');
    m.expectExit = false;
    m.starts++;
    m.log.write(`\n==== start #${m.starts} at ${new Date().toISOString()} ====\n`);
    const proc = await startService(m.service, m.env, 90_000);
    m.proc = proc;
    m.log.write(proc.output());
    const tee = (c: Buffer) => m.log.write(c);
    proc.child.stdout!.on('data', tee);
    proc.child.stderr!.on('data', tee);
    proc.child.once('exit', (code, signal) => {
      m.log.write(`\n==== exit code=${code} signal=${signal} at ${new Date().toISOString()} ====\n`);
      if (!m.expectExit) this.crashes.push({ name, at: Date.now(), code, signal, tail: proc.output().slice(-3000) });
    });
  }

  port(name: string): number {
    return this.managed.get(name)!.port;
  }

  address(name: string): string {
    return `127.0.0.1:${this.port(name)}`;
  }

  alive(name: string): boolean {
    const c = this.managed.get(name)?.proc?.child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  /** Everything the current process of `name` wrote (bounded). */
  output(name: string): string {
    return this.managed.get(name)?.proc?.output() ?? '';
  }

  pid(name: string): number | undefined {
    return this.managed.get(name)?.proc?.child.pid;
  }

  names(service?: string): string[] {
    return [...this.managed.values()].filter((m) => !service || m.service === service).map((m) => m.name);
  }

  liveDispatchers(): string[] {
    return this.names('dispatcher').filter((n) => this.alive(n));
  }

  /** Signals a process the suite means to stop; resolves with its exit code (null when killed by the signal). */
  async signal(name: string, sig: NodeJS.Signals): Promise<{ code: number | null; signal: string | null; ms: number }> {
    const m = this.managed.get(name)!;
    const child = m.proc!.child;
    m.expectExit = true;
    const t0 = Date.now();
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    child.kill(sig);
    const r = await Promise.race([exited, sleep(40_000).then(() => undefined)]);
    if (!r) {
      child.kill('SIGKILL');
      return { ...(await exited), ms: Date.now() - t0 };
    }
    return { ...r, ms: Date.now() - t0 };
  }

  /** Restarts whatever died unexpectedly (after a crash was recorded), so the run can go on. */
  async reviveCrashed(): Promise<string[]> {
    const revived: string[] = [];
    for (const m of this.managed.values()) {
      if (m.service === 'dispatcher' && m.expectExit) continue; // retired replicas stay down
      if (!this.alive(m.name) && !m.expectExit) {
        await this.start(m.name).catch(() => undefined);
        revived.push(m.name);
      }
    }
    return revived;
  }

  /** grpc.health.v1 overall status of every live process. */
  async health(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    await Promise.all(
      this.names()
        .filter((n) => this.alive(n))
        .map(async (n) => {
          out[n] = await healthOf(this.address(n));
        }),
    );
    return out;
  }

  /** Polls until every live process answers SERVING; returns ms taken, or undefined on timeout. */
  async waitServing(timeoutMs: number): Promise<{ ms: number | undefined; last: Record<string, string> }> {
    const t0 = Date.now();
    let last: Record<string, string> = {};
    while (Date.now() - t0 < timeoutMs) {
      last = await this.health();
      if (Object.values(last).every((s) => s === 'SERVING')) return { ms: Date.now() - t0, last };
      await sleep(250);
    }
    return { ms: undefined, last };
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.managed.values()].map(async (m) => {
        if (this.alive(m.name)) await this.signal(m.name, 'SIGTERM');
        m.log.end();
      }),
    );
  }
}

export async function healthOf(address: string, timeoutMs = 2_000): Promise<string> {
  const client = new grpc.Client(address, clientCredentials());
  try {
    const res = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(HEALTH_PATH, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, value) =>
        err ? reject(err) : resolve(value!),
      ),
    );
    // HealthCheckResponse { ServingStatus status = 1 }: 1 SERVING, 2 NOT_SERVING, absent = UNKNOWN.
    const code = res.length >= 2 && res[0] === 0x08 ? res[1] : 0;
    return ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'][code!] ?? `status ${code}`;
  } catch (err) {
    return `UNREACHABLE (${grpc.status[(err as grpc.ServiceError).code] ?? 'error'})`;
  } finally {
    client.close();
  }
}

/** deploy/local/{kafka,ferretdb}.sh with this run's HOOKLINE_* environment. */
export function infraScript(which: 'kafka' | 'ferretdb', cmd: 'stop' | 'start'): Promise<{ ms: number; out: string }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) =>
    execFile('bash', [path.join(REPO_ROOT, 'deploy', 'local', `${which}.sh`), cmd], { env: { ...process.env, HOOKLINE_STOP_GRACE: '15' }, timeout: 180_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${which}.sh ${cmd} failed: ${err.message}\n${stderr.slice(-2000)}`)) : resolve({ ms: Date.now() - t0, out: `${stdout}${stderr}` }),
    ),
  );
}

// Readiness as grpc.health.v1 reports it: SERVING only after start and while every dependency
// (database, broker) is reachable and the service is not draining; NOT_SERVING otherwise.
// Liveness is "the health RPC answers at all" (any status): a service that lost its database
// stays alive and recovers on its own (drivers reconnect), it just takes no traffic meanwhile.
import type { HealthStatus } from './grpc-server';
import type { Logger } from './logger';

export interface HealthSink {
  setHealth(state: HealthStatus): void;
}

/** Checks a dependency is back (e.g. a broker metadata request); throws while it is not. */
export type Probe = () => Promise<void>;

export class Readiness {
  private readonly down = new Map<string, string>();
  private readonly probes = new Map<string, NodeJS.Timeout>();
  private started = false;
  private draining = false;
  private sink: HealthSink | undefined;
  private last: HealthStatus | undefined;

  constructor(
    private readonly log: Logger,
    /** How often a down dependency with a probe is re-checked. Default 5 s. */
    private readonly probeIntervalMs = 5_000,
  ) {}

  /** The gRPC server whose health service reports this; applies the current state at once. */
  attach(sink: HealthSink): void {
    this.sink = sink;
    this.apply();
  }

  /** Start finished: SERVING unless a dependency is down. */
  ready(): void {
    this.started = true;
    this.apply();
  }

  /** Stopping: NOT_SERVING from now on, so load balancers stop sending before the server closes. */
  drain(): void {
    this.draining = true;
    for (const t of this.probes.values()) clearInterval(t);
    this.probes.clear();
    this.apply();
  }

  private readonly knownProbes = new Map<string, Probe>();

  /** How to check a dependency is back, used when a failed call marks it down. */
  registerProbe(dep: string, probe: Probe): void {
    this.knownProbes.set(dep, probe);
  }

  /**
   * A call failed because a dependency did not answer (timeout, network): NOT_SERVING until the
   * dependency's registered probe answers again. Connection events alone miss a database that
   * keeps its sockets open but answers no query. Other errors are ignored.
   */
  dependencyFailed(err: unknown): void {
    const dep = dependencyOf(err);
    const probe = dep ? this.knownProbes.get(dep) : undefined;
    if (dep && probe) this.markDown(dep, `calls fail: ${(err as Error).name}`, probe);
  }

  markUp(dep: string): void {
    if (!this.down.delete(dep)) return;
    const t = this.probes.get(dep);
    if (t) clearInterval(t);
    this.probes.delete(dep);
    this.log.info({ dependency: dep }, 'dependency reachable again');
    this.apply();
  }

  /** Marks a dependency lost; with a probe, re-checks it until it answers (then marks it up). */
  markDown(dep: string, reason: string, probe?: Probe): void {
    if (this.draining) return;
    const known = this.down.has(dep);
    this.down.set(dep, reason);
    if (!known) this.log.warn({ dependency: dep, reason }, 'dependency lost; reporting NOT_SERVING');
    if (probe && !this.probes.has(dep)) {
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        probe().then(
          () => this.markUp(dep),
          () => undefined,
        ).finally(() => (running = false));
      }, this.probeIntervalMs);
      timer.unref();
      this.probes.set(dep, timer);
    }
    this.apply();
  }

  get status(): HealthStatus {
    return this.started && !this.draining && this.down.size === 0 ? 'SERVING' : 'NOT_SERVING';
  }

  /** Why the service is not serving (empty when it is). */
  get reasons(): string[] {
    const out = [...this.down].map(([dep, reason]) => `${dep}: ${reason}`);
    if (!this.started) out.push('starting');
    if (this.draining) out.push('draining');
    return out;
  }

  private apply(): void {
    const s = this.status;
    if (s === this.last || !this.sink) return;
    this.last = s;
    this.sink.setHealth(s);
  }
}

/** Which dependency a driver error is about: 'mongodb' for timeouts and network errors, else undefined. */
export function dependencyOf(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 5; e = e.cause, i++) {
    if (/^Mongo(Network|NetworkTimeout|ServerSelection|NotConnected|TopologyClosed)Error$|^MongooseServerSelectionError$/.test(e.name)) return 'mongodb';
  }
  return undefined;
}

/** What we need of a mongoose Connection (no mongoose import here). */
export interface ConnectionEvents {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** NOT_SERVING while mongoose reports the connection lost; SERVING again when it reconnects. */
export function watchMongoose(db: ConnectionEvents, readiness: Readiness, dep = 'mongodb'): void {
  db.on('disconnected', () => readiness.markDown(dep, 'connection to the database lost'));
  db.on('close', () => readiness.markDown(dep, 'connection to the database closed'));
  db.on('connected', () => readiness.markUp(dep));
  db.on('reconnected', () => readiness.markUp(dep));
}

// The start-up steps every service shares, each registering its own cleanup as it acquires
// (so the composition roots read as a list of what the service is made of).
import mongoose, { type Connection } from 'mongoose';
import { currentTelemetry } from '@hookline/telemetry';
import type { GrpcServerSecurity } from './config';
import type { GrpcServer } from './grpc-server';
import type { Lifecycle } from './lifecycle';
import type { Logger } from './logger';
import { watchMongoose, type Readiness } from './readiness';

export interface StartupContext {
  life: Lifecycle;
  readiness: Readiness;
  log: Logger;
}

/**
 * Connects to MongoDB (5 s to find a server), watched by readiness, closed on stop. Socket reads
 * time out after 30 s, so a wedged database turns into errors (retries, NOT_SERVING with a
 * reason) instead of a silent hang.
 */
export async function connectMongo(uri: string, dbName: string, { life, readiness, log }: StartupContext): Promise<Connection> {
  log.info({ db: dbName }, 'connecting to MongoDB');
  const db = mongoose.createConnection(uri, { dbName, serverSelectionTimeoutMS: 5_000, socketTimeoutMS: 30_000 });
  watchMongoose(db, readiness);
  life.defer('mongodb', () => db.close());
  await db.asPromise();
  // A real read, not a ping: a wedged database can answer ping while every query hangs.
  readiness.registerProbe('mongodb', async () => {
    await db.db!.collection('hookline_probe').findOne({}, { maxTimeMS: 2_000 });
  });
  return db;
}

export interface ServeOptions {
  /** Service name for the log line tests and scripts wait for ("<name> serving gRPC"). */
  name: string;
  host: string;
  port: number;
  metricsHost: string;
  /** Prometheus endpoint port; undefined = none. */
  metricsPort: number | undefined;
  /** TLS, caller permissions and the health-only port (ServiceSettings.grpcSecurity); plaintext and open when unset. */
  security?: GrpcServerSecurity;
}

/**
 * Binds the gRPC server (and the metrics endpoint when configured), then reports SERVING.
 * Returns the bound ports (0 in the options picks free ones).
 */
export async function serve(server: GrpcServer, opts: ServeOptions, { life, readiness, log }: StartupContext): Promise<{ port: number; metricsPort: number | undefined; healthPort?: number | undefined }> {
  if (opts.security) server.secure(opts.security);
  const port = await server.listen(opts.host, opts.port);
  life.defer('grpc server', () => server.shutdown(5_000));
  let healthPort: number | undefined;
  if (opts.security?.healthPort !== undefined) {
    healthPort = await server.listenHealth(opts.host, opts.security.healthPort);
    log.info({ host: opts.host, healthPort }, 'serving grpc.health.v1 (only) in plaintext for probes');
  }
  let metricsPort: number | undefined;
  if (opts.metricsPort !== undefined) {
    const m = await currentTelemetry()?.startMetricsServer(opts.metricsHost, opts.metricsPort);
    if (m) {
      metricsPort = m.port;
      life.defer('metrics server', () => m.close());
      log.info({ host: opts.metricsHost, metricsPort }, 'serving Prometheus metrics on /metrics');
    }
  }
  server.onDependencyError = (err) => readiness.dependencyFailed(err);
  readiness.attach(server);
  readiness.ready();
  const sec = opts.security;
  log.info({ host: opts.host, port, tls: sec?.tls ? (sec.tls.clientCaFile ? 'mutual' : 'server') : 'off', permissions: sec?.permissions ? `${sec.permissions.callers.length} callers` : 'open' }, `${opts.name} serving gRPC`);
  return { port, metricsPort, healthPort };
}

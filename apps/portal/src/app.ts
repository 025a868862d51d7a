// Composition root of the portal: MongoDB (single use of links), gRPC clients to the registry and a
// dispatcher, the PortalService gRPC server (for the product's backend) and the browser-facing
// HTTP server (front end + JSON API). Each step registers its cleanup as it acquires.
import { createDeliveryClient, createRegistryClient, tlsFromFiles, type ClientOptions } from '@hookline/client';
import type { GrpcClientSecurity } from '@hookline/service-kit';
import { portalV1 } from '@hookline/proto';
import { connectMongo, createLogger, GrpcServer, Lifecycle, Readiness, serve, type Logger } from '@hookline/service-kit';
import type { PortalConfig } from './config';
import { apiRoutes } from './http/api';
import { PortalHttpServer } from './http/server';
import { portalService } from './grpc/portal-service';
import { MongoLinkStore } from './sessions/link-store';
import { TokenSigner } from './sessions/tokens';
import { themeCss } from './theme';

export interface PortalApp {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Bound gRPC (PortalService) port. */
  readonly port: number;
  /** Bound HTTP port. */
  readonly httpPort: number;
  readonly log: Logger;
}

export function createApp(config: PortalConfig, log: Logger = createLogger('portal', config.logLevel)): PortalApp {
  const life = new Lifecycle(log);
  const readiness = new Readiness(log);
  let port = 0;
  let httpPort = 0;
  return {
    log,
    get port() {
      return port;
    },
    get httpPort() {
      return httpPort;
    },
    async start() {
      const db = await connectMongo(config.mongoUri, config.mongoDatabase, { life, readiness, log });
      const links = new MongoLinkStore(db, log);
      links.startSweeper();
      life.defer('used-link sweeper', () => links.stopSweeper());

      log.info({ registry: config.registryAddress, dispatcher: config.dispatcherAddress }, 'connecting to endpoint-registry and dispatcher');
      const registry = createRegistryClient(clientOptions(config.registryAddress, config.registryClient));
      life.defer('registry client', () => registry.close());
      const delivery = createDeliveryClient(clientOptions(config.dispatcherAddress, config.dispatcherClient));
      life.defer('dispatcher client', () => delivery.close());

      const signer = new TokenSigner(config.signingKeys);
      log.info({ signingKeyIds: config.signingKeys.map((k) => k.id) }, 'portal signing keys loaded (the first signs)');
      const http = new PortalHttpServer(config, signer, apiRoutes({ registry, delivery, signer, links, config }), themeCss(config), log);
      httpPort = await http.listen(config.httpHost, config.httpPort);
      life.defer('http server', () => http.close());
      // Without PORTAL_PUBLIC_URL (local runs): http://localhost, which browsers treat as a secure
      // context, so the Secure session cookie works without TLS on a developer's machine.
      const publicUrl = config.publicUrl ?? `http://${['0.0.0.0', '127.0.0.1', '::', '::1'].includes(config.httpHost) ? 'localhost' : config.httpHost}:${httpPort}`;
      log.info({ host: config.httpHost, httpPort, publicUrl }, 'portal serving HTTP');

      const server = new GrpcServer(log);
      server.add(portalV1.PortalServiceService, 'webhooks.portal.v1.PortalService', portalService(signer, { publicUrl: () => publicUrl, linkTtlSeconds: config.linkTtlSeconds, defaultSessionTtlSeconds: config.defaultSessionTtlSeconds }));
      ({ port } = await serve(server, { name: 'portal', host: config.grpcHost, port: config.grpcPort, metricsHost: '127.0.0.1', metricsPort: undefined, security: config.grpcSecurity }, { life, readiness, log }));
    },
    stop: () => {
      readiness.drain();
      return life.stop();
    },
  };
}

/** libs/client options from a service's client security settings (TLS files, bearer token). */
function clientOptions(address: string, s: GrpcClientSecurity): ClientOptions {
  const tls = s.tls ? tlsFromFiles({ ...(s.tls.caFile ? { ca: s.tls.caFile } : {}), ...(s.tls.certFile ? { cert: s.tls.certFile } : {}), ...(s.tls.keyFile ? { key: s.tls.keyFile } : {}), ...(s.tls.serverName ? { serverName: s.tls.serverName } : {}) }) : undefined;
  return { address, ...(tls ? { tls } : {}), ...(s.token ? { bearerToken: s.token } : {}) };
}

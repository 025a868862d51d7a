// TLS for the gRPC servers and for the services' own gRPC clients (calls to endpoint-registry).
// Certificates are files (Kubernetes Secrets, rotated by cert-manager): the server re-reads them
// every GRPC_TLS_RELOAD_SECONDS and swaps in a new pair only once it is complete and valid, so
// a rotation needs no restart and a half-written file never takes the server down.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { StartupError } from './errors';
import type { Logger } from './logger';

export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
  /** Client certificates are required and must chain to this CA bundle (mutual TLS). */
  clientCaFile?: string;
  /** How often the files are checked for a new version. Default 60 s. */
  reloadMs: number;
}

interface Material {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  digest: string;
  notAfter: string;
}

/** Reads and checks a certificate, its key and an optional CA; the message names the file at fault. */
function readMaterial(files: { certFile: string; keyFile: string; caFile?: string | undefined }): Material {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new StartupError(`${what} ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read('certificate', files.certFile);
  const key = read('private key', files.keyFile);
  const ca = files.caFile ? read('CA bundle', files.caFile) : undefined;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new StartupError(`certificate ${files.certFile} is not a PEM certificate`);
  }
  let ok = false;
  try {
    ok = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new StartupError(`private key ${files.keyFile} is not a PEM private key`);
  }
  if (!ok) throw new StartupError(`private key ${files.keyFile} does not belong to certificate ${files.certFile} (a rotation half done?)`);
  if (ca && files.caFile) {
    try {
      new X509Certificate(ca);
    } catch {
      throw new StartupError(`CA bundle ${files.caFile} is not a PEM certificate`);
    }
  }
  // What Node itself will accept (key type, chain encoding).
  createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  const digest = createHash('sha256').update(cert).update(key).update(ca ?? '').digest('hex');
  return { cert, key, ca, digest, notAfter: x509.validTo };
}

/**
 * Server credentials whose certificate, key and client CA follow their files: a grpc-js
 * certificate provider that reports a new version only once it is complete and valid (grpc-js'
 * own file watcher reports a failed read as "no certificate", which stops the server's TLS).
 */
export class ReloadingServerCredentials implements grpc.experimental.CertificateProvider {
  readonly credentials: grpc.ServerCredentials;
  private current: Material;
  private timer: NodeJS.Timeout | undefined;
  private lastProblem: string | undefined;
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  /** Throws (with the file at fault) when the files are not a usable certificate and key. */
  constructor(
    private readonly files: ServerTlsFiles,
    private readonly log: Logger,
  ) {
    this.current = readMaterial({ certFile: files.certFile, keyFile: files.keyFile, caFile: files.clientCaFile });
    const m = this.current;
    this.credentials = grpc.experimental.createCertificateProviderServerCredentials(this, files.clientCaFile !== undefined ? this : null, files.clientCaFile !== undefined);
    log.info({ cert: files.certFile, notAfter: m.notAfter, mutualTls: files.clientCaFile !== undefined }, 'gRPC TLS certificate loaded');
  }

  // grpc-js CertificateProvider: listeners get the current version right after they are added
  // (not during: grpc-js registers the server's own watcher only after adding its listeners, so
  // a synchronous first answer would never reach the server), later versions on change.
  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    setImmediate(() => this.caListeners.has(listener) && listener(this.current.ca ? { caCertificate: this.current.ca } : null));
  }
  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    setImmediate(() => this.identityListeners.has(listener) && listener({ certificate: this.current.cert, privateKey: this.current.key }));
  }
  removeIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(), this.files.reloadMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads the files again; applies them when they changed and are valid. True when applied. */
  check(): boolean {
    let next: Material;
    try {
      next = readMaterial({ certFile: this.files.certFile, keyFile: this.files.keyFile, caFile: this.files.clientCaFile });
    } catch (err) {
      const problem = (err as Error).message;
      // Once per distinct problem: a rotation in progress is checked again at the next tick.
      if (problem !== this.lastProblem) this.log.warn({ problem }, 'gRPC TLS files changed but are not usable yet; still serving the previous certificate');
      this.lastProblem = problem;
      return false;
    }
    this.lastProblem = undefined;
    if (next.digest === this.current.digest) return false;
    this.current = next;
    for (const l of this.caListeners) l(next.ca ? { caCertificate: next.ca } : null);
    for (const l of this.identityListeners) l({ certificate: next.cert, privateKey: next.key });
    this.log.info({ cert: this.files.certFile, notAfter: next.notAfter }, 'gRPC TLS certificate reloaded');
    return true;
  }
}

/** How a service reaches another service (endpoint-registry): TLS files and its own identity. */
export interface GrpcClientSecurity {
  tls:
    | {
        /** Trust this CA bundle instead of the system store. */
        caFile?: string;
        /** This service's client certificate and key (its identity under mTLS). */
        certFile?: string;
        keyFile?: string;
        /** Check the server certificate for this name instead of the address's host. */
        serverName?: string;
      }
    | undefined;
  /** Bearer token sent as `authorization: Bearer <token>` on every call. Never logged. */
  token: string | undefined;
  reloadMs: number;
}

/** Adds `authorization: Bearer <token>` to every call of a channel. */
export function bearerTokenInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/**
 * Credentials and channel options for a generated client:
 * `new XServiceClient(address, ...grpcClientArgs(settings))`. With a CA file, the CA and the
 * client certificate are re-read every reloadMs (new connections use the new files).
 */
export function grpcClientArgs(s: GrpcClientSecurity): [grpc.ChannelCredentials, Partial<grpc.ClientOptions>] {
  const options: Partial<grpc.ClientOptions> = {};
  if (s.token) options.interceptors = [bearerTokenInterceptor(s.token)];
  if (!s.tls) return [grpc.credentials.createInsecure(), options];
  const t = s.tls;
  if (t.serverName) Object.assign(options, { 'grpc.ssl_target_name_override': t.serverName, 'grpc.default_authority': t.serverName });
  if (t.caFile) {
    // Checked now, so a wrong path fails the start with the file named, not the first call.
    readMaterialOrCa(t);
    const provider = new grpc.experimental.FileWatcherCertificateProvider({
      caCertificateFile: t.caFile,
      ...(t.certFile && t.keyFile ? { certificateFile: t.certFile, privateKeyFile: t.keyFile } : {}),
      refreshIntervalMs: s.reloadMs,
    });
    return [grpc.experimental.createCertificateProviderChannelCredentials(provider, t.certFile ? provider : null), options];
  }
  const pair = t.certFile && t.keyFile ? readMaterial({ certFile: t.certFile, keyFile: t.keyFile }) : undefined;
  return [grpc.credentials.createSsl(null, pair?.key ?? null, pair?.cert ?? null), options];
}

function readMaterialOrCa(t: { caFile?: string; certFile?: string; keyFile?: string }): void {
  if (t.certFile && t.keyFile) readMaterial({ certFile: t.certFile, keyFile: t.keyFile, caFile: t.caFile });
  else if (t.caFile) {
    try {
      new X509Certificate(readFileSync(t.caFile));
    } catch (err) {
      throw new StartupError(`CA bundle ${t.caFile} cannot be used: ${(err as NodeJS.ErrnoException).code ?? 'not a PEM certificate'}`);
    }
  }
}

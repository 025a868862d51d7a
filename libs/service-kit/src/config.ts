// Helpers for each service's config.ts (the only readers of process.env): read every key,
// collect every problem, and fail at start with the full list.
import { accessSync, constants, readFileSync } from 'node:fs';
import type { GrpcClientSecurity, ServerTlsFiles } from './grpc-tls';
import { parsePermissions, type PermissionsPolicy } from './permissions';
import { contractDescriptors } from './reflection';
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

export class EnvReader {
  private readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  /** A string; `required` when there is no sensible default. */
  string(name: string, fallback?: string): string {
    const v = this.raw(name) ?? fallback;
    if (v === undefined) {
      this.problems.push(`${name} is required`);
      return '';
    }
    return v;
  }

  optional(name: string): string | undefined {
    return this.raw(name);
  }

  int(name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n)) {
      this.problems.push(`${name}=${JSON.stringify(v)} is not a whole number`);
      return fallback;
    }
    if ((range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
      this.problems.push(`${name}=${n} is outside ${range.min ?? '-inf'}..${range.max ?? 'inf'}`);
      return fallback;
    }
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    if (/^(0|false|no|off)$/i.test(v)) return false;
    this.problems.push(`${name}=${JSON.stringify(v)} is not a boolean (true/false)`);
    return fallback;
  }

  list(name: string, fallback: string[] = []): string[] {
    const v = this.raw(name);
    return v === undefined ? fallback : v.split(',').map((s) => s.trim()).filter(Boolean);
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(v)) {
      this.problems.push(`${name}=${JSON.stringify(v)} must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return v as T;
  }

  /** A path that must name a readable file; undefined when unset. */
  file(name: string): string | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    try {
      accessSync(v, constants.R_OK);
    } catch (err) {
      this.problems.push(`${name}=${v} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return v;
  }

  /**
   * A secret from NAME or from the file NAME_FILE (a mounted Kubernetes Secret), never both.
   * Problems name the key only, never the value.
   */
  secret(name: string): string | undefined {
    const inline = this.raw(name);
    const path = this.file(`${name}_FILE`);
    if (inline !== undefined && path !== undefined) {
      this.problems.push(`set ${name} or ${name}_FILE, not both`);
      return undefined;
    }
    if (path === undefined) return inline;
    try {
      const v = readFileSync(path, 'utf8').trim();
      if (v === '') this.problems.push(`${name}_FILE=${path} is empty`);
      return v || undefined;
    } catch {
      return undefined; // already listed by file()
    }
  }

  /** Lets a service add its own cross-field checks. */
  problem(message: string): void {
    this.problems.push(message);
  }

  /** Throws ConfigError listing every problem found so far. */
  done(): void {
    // A key read by two helpers (GRPC_TLS_RELOAD_SECONDS) is listed once.
    if (this.problems.length > 0) throw new ConfigError([...new Set(this.problems)]);
  }
}

/** TLS, caller permissions and the probe port of a service's gRPC server. */
export interface GrpcServerSecurity {
  /** Plaintext when undefined (local development, or TLS ended by a mesh before the service). */
  tls: ServerTlsFiles | undefined;
  /** Open to any caller when undefined (local development). */
  permissions: PermissionsPolicy | undefined;
  /** A plaintext port serving grpc.health.v1 only, for Kubernetes probes (they cannot do TLS). */
  healthPort: number | undefined;
}

/** GRPC_TLS_*, GRPC_PERMISSIONS_FILE and GRPC_HEALTH_PORT. */
export function readGrpcServerSecurity(r: EnvReader): GrpcServerSecurity {
  const certFile = r.file('GRPC_TLS_CERT_FILE');
  const keyFile = r.file('GRPC_TLS_KEY_FILE');
  const clientCaFile = r.file('GRPC_TLS_CLIENT_CA_FILE');
  const reloadMs = r.int('GRPC_TLS_RELOAD_SECONDS', 60, { min: 1, max: 86_400 }) * 1000;
  if ((certFile === undefined) !== (keyFile === undefined)) r.problem('GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE must be set together');
  if (clientCaFile !== undefined && certFile === undefined) r.problem('GRPC_TLS_CLIENT_CA_FILE (mutual TLS) needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE');
  const tls = certFile && keyFile ? { certFile, keyFile, reloadMs, ...(clientCaFile ? { clientCaFile } : {}) } : undefined;
  let permissions: PermissionsPolicy | undefined;
  const policyFile = r.file('GRPC_PERMISSIONS_FILE');
  if (policyFile !== undefined) {
    try {
      const { policy, problems } = parsePermissions(readFileSync(policyFile, 'utf8'), contractDescriptors());
      for (const p of problems) r.problem(`GRPC_PERMISSIONS_FILE ${policyFile}: ${p}`);
      permissions = policy;
    } catch {
      // unreadable: already listed by file()
    }
    if (permissions && tls?.clientCaFile === undefined && permissions.callers.some((c) => c.certificate !== undefined && c.tokenSha256 === undefined)) {
      r.problem('GRPC_PERMISSIONS_FILE names callers by certificate only, but without GRPC_TLS_CLIENT_CA_FILE no client certificate is ever verified: set it, or give those callers a tokenSha256');
    }
  }
  const health = r.optional('GRPC_HEALTH_PORT');
  const healthPort = health === undefined ? undefined : r.int('GRPC_HEALTH_PORT', 0, { min: 0, max: 65535 });
  return { tls, permissions, healthPort };
}

/**
 * How a service calls another one, keys under `prefix` (e.g. REGISTRY): <prefix>_TLS (on when
 * any <prefix>_TLS_* file is set), <prefix>_TLS_CA_FILE, <prefix>_TLS_CERT_FILE,
 * <prefix>_TLS_KEY_FILE, <prefix>_TLS_SERVER_NAME, and its bearer token <prefix>_TOKEN or
 * <prefix>_TOKEN_FILE.
 */
export function readGrpcClientSecurity(r: EnvReader, prefix: string): GrpcClientSecurity {
  const caFile = r.file(`${prefix}_TLS_CA_FILE`);
  const certFile = r.file(`${prefix}_TLS_CERT_FILE`);
  const keyFile = r.file(`${prefix}_TLS_KEY_FILE`);
  const serverName = r.optional(`${prefix}_TLS_SERVER_NAME`);
  const on = r.bool(`${prefix}_TLS`, Boolean(caFile || certFile || keyFile));
  if ((certFile === undefined) !== (keyFile === undefined)) r.problem(`${prefix}_TLS_CERT_FILE and ${prefix}_TLS_KEY_FILE must be set together`);
  if (!on && (caFile || certFile || serverName)) r.problem(`${prefix}_TLS=false contradicts the ${prefix}_TLS_* settings`);
  return {
    tls: on ? { ...(caFile ? { caFile } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}), ...(serverName ? { serverName } : {}) } : undefined,
    token: r.secret(`${prefix}_TOKEN`),
    reloadMs: r.int('GRPC_TLS_RELOAD_SECONDS', 60, { min: 1, max: 86_400 }) * 1000,
  };
}

/** Settings every service reads the same way (README configuration table). */
export interface ServiceSettings {
  grpcHost: string;
  /** 0 picks a free port (tests). */
  grpcPort: number;
  grpcSecurity: GrpcServerSecurity;
  logLevel: string;
  mongoUri: string;
  mongoDatabase: string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** GRPC_HOST, GRPC_PORT, LOG_LEVEL, MONGODB_URI, MONGODB_DATABASE with the service's defaults. */
export function readServiceSettings(r: EnvReader, defaults: { grpcPort: number; mongoDatabase: string }): ServiceSettings {
  return {
    grpcHost: r.string('GRPC_HOST', '0.0.0.0'),
    grpcPort: r.int('GRPC_PORT', defaults.grpcPort, { min: 0, max: 65535 }),
    grpcSecurity: readGrpcServerSecurity(r),
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    mongoUri: r.string('MONGODB_URI', 'mongodb://127.0.0.1:27027/'),
    mongoDatabase: r.string('MONGODB_DATABASE', defaults.mongoDatabase),
  };
}

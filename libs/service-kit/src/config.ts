// Helpers for each service's config.ts (the only readers of process.env): read every key,
// collect every problem, and fail at start with the full list.
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

  /** Lets a service add its own cross-field checks. */
  problem(message: string): void {
    this.problems.push(message);
  }

  /** Throws ConfigError listing every problem found so far. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

/** Settings every service reads the same way (README configuration table). */
export interface ServiceSettings {
  grpcHost: string;
  /** 0 picks a free port (tests). */
  grpcPort: number;
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
    logLevel: r.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    mongoUri: r.string('MONGODB_URI', 'mongodb://127.0.0.1:27027/'),
    mongoDatabase: r.string('MONGODB_DATABASE', defaults.mongoDatabase),
  };
}

// The only reader of the environment: global flags win over HOOKLINE_* variables, which win
// over the defaults (the ports `npm start` uses on 127.0.0.1).
import { readFileSync } from 'node:fs';
import { tlsFromFiles, type HooklineClientOptions, type TlsOptions } from '@hookline/client';
import { UsageError } from './errors';
import { parseDurationSeconds } from './parse';

export interface GlobalFlags {
  registry?: string;
  ingest?: string;
  dispatcher?: string;
  workspace?: string;
  json?: boolean;
  timeout?: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  'server-name'?: string;
  'token-file'?: string;
}

export interface CliConfig {
  client: HooklineClientOptions & { registry: string; ingest: string; dispatcher: string };
  workspace: string | undefined;
  json: boolean;
  /** HOOKLINE_SECRET, for `verify`. */
  secretFromEnv: string | undefined;
}

export const DEFAULT_ADDRESSES = { registry: '127.0.0.1:50051', ingest: '127.0.0.1:50052', dispatcher: '127.0.0.1:50053' } as const;

function address(flag: string, value: string): string {
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(value)) throw new UsageError(`--${flag}: "${value}" is not host:port`);
  return value;
}

export function loadConfig(flags: GlobalFlags, env: NodeJS.ProcessEnv): CliConfig {
  const pick = (flag: keyof typeof DEFAULT_ADDRESSES, envName: string) => address(flag, flags[flag] ?? (env[envName] || DEFAULT_ADDRESSES[flag]));
  const ca = flags.ca ?? (env.HOOKLINE_TLS_CA || undefined);
  const cert = flags.cert ?? (env.HOOKLINE_TLS_CERT || undefined);
  const key = flags.key ?? (env.HOOKLINE_TLS_KEY || undefined);
  const serverName = flags['server-name'] ?? (env.HOOKLINE_TLS_SERVER_NAME || undefined);
  const tlsOn = flags.tls === true || env.HOOKLINE_TLS === '1' || env.HOOKLINE_TLS === 'true' || Boolean(ca || cert || key);
  let tls: TlsOptions | boolean = false;
  if (tlsOn) {
    if (Boolean(cert) !== Boolean(key)) throw new UsageError('--cert and --key must be given together (mutual TLS)');
    try {
      tls = tlsFromFiles({ ca, cert, key, serverName });
    } catch (err) {
      throw new UsageError(`cannot read a TLS file: ${(err as Error).message}`);
    }
  }
  // A file, not a flag value: a token on the command line ends up in shell history and `ps`.
  const tokenFile = flags['token-file'] ?? (env.HOOKLINE_TOKEN_FILE || undefined);
  let bearerToken = env.HOOKLINE_TOKEN || undefined;
  if (tokenFile !== undefined) {
    try {
      bearerToken = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`--token-file: cannot read ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!bearerToken) throw new UsageError(`--token-file: ${tokenFile} is empty`);
  }
  const timeoutSeconds = flags.timeout === undefined ? undefined : parseDurationSeconds('timeout', flags.timeout);
  if (timeoutSeconds === 0) throw new UsageError('--timeout: must be more than 0');
  // An empty variable counts as unset; an empty flag is a mistake.
  const workspace = flags.workspace ?? (env.HOOKLINE_WORKSPACE || undefined);
  if (workspace !== undefined && workspace.length === 0) throw new UsageError('--workspace: must not be empty');
  return {
    client: {
      registry: pick('registry', 'HOOKLINE_REGISTRY'),
      ingest: pick('ingest', 'HOOKLINE_INGEST'),
      dispatcher: pick('dispatcher', 'HOOKLINE_DISPATCHER'),
      tls,
      ...(bearerToken ? { bearerToken } : {}),
      ...(timeoutSeconds !== undefined ? { timeoutMs: timeoutSeconds * 1000, methodTimeoutsMs: { SendTestEvent: timeoutSeconds * 1000, RecoverEndpoint: timeoutSeconds * 1000 } } : {}),
    },
    workspace,
    json: flags.json === true,
    secretFromEnv: env.HOOKLINE_SECRET || undefined,
  };
}

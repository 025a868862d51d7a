// `hookline <group> <command> [args] [flags]`: finds the command, parses its flags with
// node:util parseArgs (strict: unknown flags are usage errors), runs it, and maps every outcome
// to an exit code (errors.ts). Takes its environment and streams as arguments, so it can be run
// in-process as well as from main.ts.
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsOptionDescriptor } from 'node:util';
import { createHooklineClient, HooklineError, type HooklineClient } from '@hookline/client';
import { commandHelp, usageLine, type Command, type Context } from './command';
import { catalogCommands } from './commands/catalog';
import { deliveryCommands, WaitIncomplete } from './commands/delivery';
import { endpointCommands } from './commands/endpoints';
import { verifyCommand } from './commands/verify';
import { loadConfig, type CliConfig, type GlobalFlags } from './config';
import { EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, UsageError, VerificationFailed } from './errors';
import type { Out } from './output';

export const COMMANDS: Command[] = [...endpointCommands, ...catalogCommands, ...deliveryCommands, verifyCommand];

const GLOBAL_OPTIONS: Record<string, ParseArgsOptionDescriptor & { help: string }> = {
  workspace: { type: 'string', short: 'w', help: 'workspace id (env HOOKLINE_WORKSPACE)' },
  json: { type: 'boolean', help: 'print the response as JSON (proto3 JSON names) on stdout; errors as JSON on stderr' },
  registry: { type: 'string', help: 'endpoint-registry host:port (env HOOKLINE_REGISTRY, default 127.0.0.1:50051)' },
  ingest: { type: 'string', help: 'event-ingest host:port (env HOOKLINE_INGEST, default 127.0.0.1:50052)' },
  dispatcher: { type: 'string', help: 'a dispatcher host:port (env HOOKLINE_DISPATCHER, default 127.0.0.1:50053)' },
  timeout: { type: 'string', help: 'budget per call, retries included (e.g. 5s; default 10s, test sends 20s, recover 60s)' },
  tls: { type: 'boolean', help: 'connect with TLS using the system trust store (env HOOKLINE_TLS=1)' },
  ca: { type: 'string', help: 'PEM CA file to trust (implies --tls; env HOOKLINE_TLS_CA)' },
  cert: { type: 'string', help: 'PEM client certificate for mutual TLS (env HOOKLINE_TLS_CERT)' },
  key: { type: 'string', help: 'PEM client key for mutual TLS (env HOOKLINE_TLS_KEY)' },
  'server-name': { type: 'string', help: 'expected server certificate name (env HOOKLINE_TLS_SERVER_NAME)' },
  'token-file': { type: 'string', help: 'file holding a bearer token sent as "authorization: Bearer" (env HOOKLINE_TOKEN or HOOKLINE_TOKEN_FILE)' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
};

const SERVICE_OF: Record<string, keyof Pick<CliConfig['client'], 'registry' | 'ingest' | 'dispatcher'>> = {
  EndpointRegistryService: 'registry',
  EventIngestService: 'ingest',
  DeliveryService: 'dispatcher',
};
const SERVICE_NAME = { registry: 'endpoint-registry', ingest: 'event-ingest', dispatcher: 'the dispatcher' } as const;

export function globalHelp(): string {
  const lines = ['usage: hookline <command> [arguments] [flags]', '', 'commands:'];
  for (const c of COMMANDS) lines.push(`  ${[...c.words, ...c.args.map((a) => `<${a}>`)].join(' ').padEnd(44)}${c.summary.split('. ')[0]!.replace(/\.$/, '')}`);
  lines.push('', 'global flags:');
  for (const [name, o] of Object.entries(GLOBAL_OPTIONS)) lines.push(`  ${((o.short ? `-${o.short}, ` : '') + `--${name}` + (o.type === 'string' ? ' VALUE' : '')).padEnd(26)}${o.help}`);
  lines.push('', 'exit codes: 0 ok, 1 refused by the server (or signature not valid), 2 usage error, 3 service unreachable', '`hookline <command> --help` shows a command\'s flags.');
  return lines.join('\n');
}

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  stdin?: () => Buffer;
  isTty?: boolean;
  now?: () => Date;
}

/** Which command the words pick: the longest match of COMMANDS' words at the start of the positionals. */
function findCommand(positionals: string[]): { command?: Command; rest: string[]; group?: string } {
  for (const c of COMMANDS) {
    if (c.words.every((w, i) => positionals[i] === w)) return { command: c, rest: positionals.slice(c.words.length) };
  }
  const group = COMMANDS.some((c) => c.words[0] === positionals[0]) ? positionals[0] : undefined;
  return group ? { group, rest: [] } : { rest: [] };
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const write = (stream: { write(s: string): unknown }) => (s: string) => void stream.write(s.endsWith('\n') ? s : s + '\n');
  const stdout = write(io.stdout);
  const stderr = write(io.stderr);
  let json = argv.includes('--json');
  let clients: HooklineClient | undefined;
  let config: CliConfig | undefined;
  try {
    // First pass, lenient: only to find the command words among the arguments.
    const loose = parseArgs({ args: argv, options: GLOBAL_OPTIONS, strict: false, allowPositionals: true });
    const words = loose.positionals;
    const { command, group } = findCommand(words);
    if (!command) {
      if (loose.values.help === true || argv.length === 0) {
        (argv.length === 0 ? stderr : stdout)(group ? groupHelp(group) : globalHelp());
        return argv.length === 0 ? EXIT_USAGE : EXIT_OK;
      }
      if (group) throw new UsageError(`unknown ${group} command "${words[1] ?? ''}"`, groupHelp(group));
      throw new UsageError(`unknown command "${words[0] ?? argv[0]}"`, 'run `hookline --help` for the list');
    }
    // Second pass, strict: global and command flags together, command words removed.
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...command.options }, strict: true, allowPositionals: true, allowNegative: true });
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''), usageLine(command));
    }
    if (parsed.values.help === true) {
      stdout(commandHelp(command));
      return EXIT_OK;
    }
    const args = parsed.positionals.slice(command.words.length);
    if (args.length < command.args.length) throw new UsageError(`missing <${command.args[args.length]}>`, usageLine(command));
    if (args.length > command.args.length) throw new UsageError(`unexpected argument "${args[command.args.length]}"`, usageLine(command));
    for (const [name, o] of Object.entries(command.options)) if (o.required && parsed.values[name] === undefined) throw new UsageError(`--${name} is required`, usageLine(command));
    const cfg = loadConfig(parsed.values as GlobalFlags, io.env);
    config = cfg;
    json = cfg.json;
    let stdinCache: Buffer | undefined;
    const out: Out = { line: (t = '') => stdout(t), note: (t) => stderr(t), json: (v) => stdout(JSON.stringify(v, null, 2)) };
    const ctx: Context = {
      config: cfg,
      out,
      client: () => (clients ??= createHooklineClient(cfg.client)),
      workspace: () => {
        if (!cfg.workspace) throw new UsageError('no workspace: give --workspace ID or set HOOKLINE_WORKSPACE', usageLine(command));
        return cfg.workspace;
      },
      now: io.now ?? (() => new Date()),
      readStdin: () => (stdinCache ??= io.stdin ? io.stdin() : readFileSync(0)),
      isTty: io.isTty ?? false,
    };
    await command.run(ctx, parsed.values as Record<string, string | boolean | string[] | undefined>, args);
    return EXIT_OK;
  } catch (err) {
    return report(err, json, config, stderr);
  } finally {
    clients?.close();
  }
}

function groupHelp(group: string): string {
  const cmds = COMMANDS.filter((c) => c.words[0] === group);
  return [`usage: hookline ${group} <command>`, '', 'commands:', ...cmds.map((c) => `  ${usageLine(c)}`)].join('\n');
}

function report(err: unknown, json: boolean, config: CliConfig | undefined, stderr: (s: string) => void): number {
  if (err instanceof UsageError) {
    if (json) stderr(JSON.stringify({ error: { kind: 'usage', message: err.message } }));
    else stderr(`error: ${err.message}${err.usage ? `\n${err.usage.startsWith('usage:') ? err.usage : `usage: ${err.usage}`}` : ''}`);
    return EXIT_USAGE;
  }
  if (err instanceof VerificationFailed) {
    if (json) stderr(JSON.stringify({ error: { kind: 'verification', reason: err.reason, scheme: err.scheme ?? null } }));
    else stderr(`invalid: ${err.reason}${err.scheme ? ` (${err.scheme === 'standard-webhooks' ? 'Standard Webhooks' : 'X-Signature-256'})` : ''}${REASON_HINT[err.reason] ? ` — ${REASON_HINT[err.reason]}` : ''}`);
    return EXIT_REFUSED;
  }
  if (err instanceof HooklineError) {
    const service = SERVICE_OF[err.method.split('/')[1]?.split('.').pop() ?? ''];
    const where = service && config ? `${SERVICE_NAME[service]} at ${config.client[service]}` : 'the service';
    if (json) {
      stderr(JSON.stringify({ error: { kind: err.unreachable ? 'unreachable' : 'refused', code: err.codeName, message: err.details, fieldViolations: err.violations, attempts: err.attempts } }));
    } else if (err.unreachable) {
      stderr(`error: cannot reach ${where}: ${err.codeName}: ${err.details}${err.attempts > 1 ? ` (after ${err.attempts} attempts)` : ''}`);
    } else {
      stderr(`error: ${err.codeName}: ${err.details}`);
      for (const v of err.violations) stderr(`  - ${v.field}: ${v.description}`);
    }
    return err.unreachable ? EXIT_UNREACHABLE : EXIT_REFUSED;
  }
  if (err instanceof WaitIncomplete) {
    stderr(json ? JSON.stringify({ error: { kind: 'incomplete', message: err.message } }) : `error: ${err.message}`);
    return EXIT_REFUSED;
  }
  stderr(json ? JSON.stringify({ error: { kind: 'internal', message: String((err as Error)?.message ?? err) } }) : `error: ${(err as Error)?.stack ?? String(err)}`);
  return EXIT_REFUSED;
}

const REASON_HINT: Record<string, string> = {
  'no-match': 'wrong secret, or the body is not the exact bytes received',
  'missing-signature': 'no X-Signature-256 or webhook-signature header',
  'missing-headers': 'webhook-id and webhook-timestamp must accompany webhook-signature',
  'too-old': 'webhook-timestamp is older than the tolerance (a replay, or use --at / --tolerance for an old saved request)',
  'too-new': 'webhook-timestamp is in the future beyond the tolerance',
  'bad-timestamp': 'webhook-timestamp is not whole seconds',
};

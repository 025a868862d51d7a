// What a command is: its words, flags (node:util parseArgs descriptors), positional arguments and
// a run function that gets a context with lazily created clients and the output sinks.
import type { ParseArgsOptionDescriptor } from 'node:util';
import type { HooklineClient } from '@hookline/client';
import type { CliConfig } from './config';
import { UsageError } from './errors';
import type { Out } from './output';

export type Flags = Record<string, string | boolean | string[] | undefined>;

export interface Context {
  config: CliConfig;
  out: Out;
  /** Created on first use, so `verify` and usage errors never dial a server. */
  client(): HooklineClient;
  /** The workspace, or a usage error saying how to give one. */
  workspace(): string;
  now(): Date;
  readStdin(): Buffer;
  isTty: boolean;
}

export interface Command {
  /** e.g. ['endpoints', 'create'] or ['recover']. */
  words: string[];
  /** Positional argument names, e.g. ['endpoint-id']; all required. */
  args: string[];
  /** Flags after the global ones; shown as `[--flag VALUE]` in usage. */
  options: Record<string, ParseArgsOptionDescriptor & { help: string; required?: boolean }>;
  summary: string;
  run(ctx: Context, flags: Flags, args: string[]): Promise<void>;
}

export function usageLine(c: Command): string {
  const opts = Object.entries(c.options).map(([name, o]) => {
    const f = o.type === 'boolean' ? `--${name}` : `--${name} ${name.toUpperCase().replace(/-/g, '_')}`;
    return o.required ? f : `[${f}]`;
  });
  return ['hookline', ...c.words, ...c.args.map((a) => `<${a}>`), ...opts].join(' ');
}

export function commandHelp(c: Command): string {
  const lines = [`usage: ${usageLine(c)}`, '', c.summary];
  const entries = Object.entries(c.options);
  if (entries.length > 0) {
    lines.push('', 'flags:');
    const width = Math.max(...entries.map(([n]) => n.length)) + 2;
    for (const [name, o] of entries) lines.push(`  --${name.padEnd(width)}${o.help}`);
  }
  lines.push('', 'global flags: see `hookline --help`');
  return lines.join('\n');
}

/** A required string flag, or a usage error naming it. */
export function requireFlag(c: Command, flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`--${name} is required`, usageLine(c));
  return v;
}

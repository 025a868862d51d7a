// Parsing of flag values: durations, times, lists, inline-or-file inputs. Every failure is a
// UsageError naming the flag, so a typo exits 2 before any server is called.
import { readFileSync } from 'node:fs';
import { UsageError } from './errors';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** `90`, `90s`, `15m`, `2h`, `7d`, or combinations such as `1h30m` → whole seconds. */
export function parseDurationSeconds(flag: string, text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const parts = [...t.matchAll(/(\d+)([smhd])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== t) {
    throw new UsageError(`--${flag}: "${text}" is not a duration (use e.g. 30s, 15m, 2h, 7d)`);
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_SECONDS[p[2]!]!, 0);
}

/** An RFC 3339 time (`2026-01-31T12:00:00Z`), or a duration meaning that long before `now`. */
export function parseTime(flag: string, text: string, now: Date): Date {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) throw new UsageError(`--${flag}: "${text}" is not a valid time`);
    return d;
  }
  try {
    return new Date(now.getTime() - parseDurationSeconds(flag, text) * 1000);
  } catch {
    throw new UsageError(`--${flag}: "${text}" is neither a time (2026-01-31T12:00:00Z) nor a duration ago (2h, 3d)`);
  }
}

/** `a,b, c` → ['a','b','c']; empty items are an error. */
export function parseList(flag: string, text: string): string[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s.length === 0)) throw new UsageError(`--${flag}: "${text}" has an empty item`);
  return items;
}

export function parsePositiveInt(flag: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) throw new UsageError(`--${flag}: must be a whole number from 1 to ${max}`);
  return Number(text);
}

/**
 * Inline text, `@path` for a file's bytes, or `-` for standard input. Returns the raw bytes: a
 * payload is sent exactly as written.
 */
export function readInput(flag: string, text: string, readStdin: () => Buffer): Buffer {
  if (text === '-') return readStdin();
  if (text.startsWith('@')) {
    try {
      return readFileSync(text.slice(1));
    } catch (err) {
      throw new UsageError(`--${flag}: cannot read ${text.slice(1)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  return Buffer.from(text, 'utf8');
}

export function readFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** `Name: value` → ['name', 'value']. */
export function parseHeaderLine(flag: string, line: string): [string, string] {
  const i = line.indexOf(':');
  if (i <= 0) throw new UsageError(`--${flag}: "${line}" is not "Name: value"`);
  return [line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()];
}

/**
 * A saved HTTP request: optional request line (`POST /hook HTTP/1.1`), header lines, an empty
 * line, then the body byte for byte (CRLF or LF line ends). Headers only, without a body, is an error.
 */
export function parseSavedRequest(bytes: Buffer): { headers: Record<string, string>; body: Buffer } {
  const crlf = bytes.indexOf('\r\n\r\n');
  const lf = bytes.indexOf('\n\n');
  let end: number;
  let sep: number;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) [end, sep] = [crlf, 4];
  else if (lf >= 0) [end, sep] = [lf, 2];
  else throw new UsageError('--request: no empty line between the headers and the body');
  const head = bytes.subarray(0, end).toString('utf8').split(/\r?\n/);
  if (head[0] && /^[A-Z]+ \S+ HTTP\/\d/.test(head[0])) head.shift();
  const headers: Record<string, string> = {};
  for (const line of head) {
    if (!line.trim()) continue;
    const [k, v] = parseHeaderLine('request', line);
    headers[k] = headers[k] === undefined ? v : `${headers[k]} ${v}`;
  }
  return { headers, body: bytes.subarray(end + sep) };
}

// Human output: aligned tables and key/value blocks. Machine output (--json) is the response
// message in proto3 JSON form, written by the command with the generated toJSON.
export interface Out {
  /** stdout. */
  line(text?: string): void;
  /** stderr: progress and hints, never data. */
  note(text: string): void;
  json(value: unknown): void;
}

/** Columns padded to the widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `Label:  value` lines with the values aligned. Undefined values are left out. */
export function keyValues(pairs: [string, string | undefined][]): string {
  const shown = pairs.filter((p): p is [string, string] => p[1] !== undefined);
  const width = Math.max(...shown.map(([k]) => k.length)) + 1;
  return shown.map(([k, v]) => `${(k + ':').padEnd(width)}  ${v}`).join('\n');
}

export const time = (d: Date | undefined): string => (d ? d.toISOString() : '-');
export const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/** `{seconds: "1", nanos: 500000000}` → `1500 ms`. */
export function durationMs(d: { seconds: string; nanos: number } | undefined): string {
  if (!d) return '-';
  return `${Math.round(Number(d.seconds) * 1000 + d.nanos / 1e6)} ms`;
}

/** One line, at most `max` characters, for table cells. */
export function cell(text: string, max = 60): string {
  const one = text.replace(/\s+/g, ' ');
  return one.length > max ? one.slice(0, max - 1) + '…' : one;
}

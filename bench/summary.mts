// Min / median / max of every figure over several `npm run bench` results (BENCH_RUNS=3 runs
// them in a row): this machine's baseline swings by 2× from run to run, so one run says little.
// Usage: node bench/summary.mts bench/results/a.json bench/results/b.json …
import { readFileSync } from 'node:fs';

const files = process.argv.slice(2);
const runs = files.map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { results: Record<string, unknown> }).results);
/** Numeric leaves as dotted paths (latency_ms.p99, fanout_10.ms, …). */
const leaves = (o: unknown, at = ''): [string, number][] =>
  typeof o === 'number' ? [[at, o]] : o && typeof o === 'object' ? Object.entries(o).flatMap(([k, v]) => leaves(v, at ? `${at}.${k}` : k)) : [];
const byPath = new Map<string, number[]>();
for (const r of runs) for (const [p, v] of leaves(r)) byPath.set(p, [...(byPath.get(p) ?? []), v]);
const fmt = (v: number) => (Math.abs(v) >= 100 ? Math.round(v).toLocaleString() : Number(v.toFixed(3)).toString());
console.log(`\nover ${runs.length} runs: min / median / max`);
for (const [p, vs] of byPath) {
  if (/cores|memoryGiB|samples|events$|backlog$|outage_ms/.test(p)) continue;
  const s = [...vs].sort((a, b) => a - b);
  console.log(`  ${p.padEnd(48)} ${fmt(s[0]!)} / ${fmt(s[Math.floor((s.length - 1) / 2)]!)} / ${fmt(s[s.length - 1]!)}`);
}

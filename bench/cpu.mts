// CPU time per process, from /proc: how a phase's work divides between the processes on the
// machine (the services, the receiver, the harness, Kafka and FerretDB), in CPU microseconds per
// delivery. Linux only; elsewhere (or for a process that is gone) a process simply has no figure.
// A phase reads it from its first publish to its last delivery: work still pending then (the
// last outcomes being recorded, say) is not counted, so FerretDB's figure is a floor.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds `pid` has used so far (all its threads), or undefined. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces: state is
    // field 3, utime 14 and stime 15 (1-based), so 11 and 12 here.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}

/** The pid in a pid file of the local infrastructure (deploy/local), or undefined. */
export function infraPid(repoRoot: string, name: 'kafka' | 'ferretdb'): number | undefined {
  const file = path.join(process.env.HOOKLINE_STATE_DIR ?? path.join(repoRoot, '.local'), 'run', `${name}.pid`);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export type Processes = Record<string, number | undefined>;

/**
 * Starts measuring; the function returned gives each process's CPU microseconds per unit of work
 * since then (`units` deliveries, say), plus `total`, sorted largest first. The harness's own
 * process is measured with process.cpuUsage().
 */
export function cpuMeter(processes: Processes): (units: number) => Record<string, number> {
  const start = new Map(Object.entries(processes).map(([name, pid]) => [name, pid === process.pid ? undefined : cpuSeconds(pid)]));
  const self = process.cpuUsage();
  return (units) => {
    const per: [string, number][] = [];
    for (const [name, pid] of Object.entries(processes)) {
      let seconds: number | undefined;
      if (pid === process.pid) {
        const u = process.cpuUsage(self);
        seconds = (u.user + u.system) / 1e6;
      } else {
        const now = cpuSeconds(pid);
        const then = start.get(name);
        seconds = now === undefined || then === undefined ? undefined : now - then;
      }
      if (seconds !== undefined) per.push([name, Math.round((seconds * 1e6) / Math.max(units, 1))]);
    }
    per.sort((a, b) => b[1] - a[1]);
    per.push(['total', per.reduce((a, [, us]) => a + us, 0)]);
    return Object.fromEntries(per);
  };
}

/** "dispatcher 395, FerretDB 240, … = 900 µs" */
export function describeCpu(us: Record<string, number>): string {
  const { total, ...rest } = us;
  return `${Object.entries(rest)
    .map(([n, v]) => `${n} ${v}`)
    .join(', ')} = ${total} µs`;
}

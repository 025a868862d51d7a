// Runs a built service (apps/<name>/dist/main.js) as its own process on Node 24, waits until
// it logs that it serves gRPC, and stops it by its pid.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

export interface ServiceProcess {
  name: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote, for assertions and failure reports. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Output kept per process: enough for assertions and failure reports, bounded for long runs. */
const MAX_OUTPUT = 1024 * 1024;
const live = new Set<ChildProcess>();
// A test runner that dies must not leave services behind: kill what this process started.
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startService(name: string, env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceProcess> {
  const main = path.join(REPO_ROOT, 'apps', name, 'dist', 'main.js');
  const child = spawn(process.execPath, ['--enable-source-maps', main], {
    env: { PATH: process.env.PATH ?? '', GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let ready = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms:\n${out.slice(-4000)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT / 2);
      if (ready) return;
      const m = /"port":(\d+)[^\n]*serving gRPC/.exec(out);
      if (m) {
        ready = true;
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before serving:\n${out.slice(-4000)}`));
    });
  });
  return {
    name,
    port,
    child,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

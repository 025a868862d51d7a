// What every main.ts does: build the app, start it, stop it on SIGTERM/SIGINT within the
// deadline, and exit non-zero on a start failure with the reason on stderr (no stack for
// configuration mistakes: the list of problems is the message).
import { ConfigError } from './config';

export interface Runnable {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function runMain(name: string, build: () => Promise<Runnable> | Runnable): void {
  let app: Runnable | undefined;
  const stop = (signal: string) => {
    process.stderr.write(`${name}: ${signal} received, stopping\n`);
    const hard = setTimeout(() => process.exit(1), 25_000);
    hard.unref();
    void (app?.stop() ?? Promise.resolve()).then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  Promise.resolve()
    .then(build)
    .then(async (a) => {
      app = a;
      await a.start();
    })
    .catch((err: unknown) => {
      const message = err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`${name}: failed to start: ${message}\n`);
      process.exit(1);
    });
}

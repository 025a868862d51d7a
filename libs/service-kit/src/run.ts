// What every main.ts does: build the app, start it, stop it on SIGTERM/SIGINT within the
// deadline, and exit non-zero on a start failure with the reason on stderr (no stack for
// configuration mistakes: the list of problems is the message).
import { ConfigError } from './config';
import { StartupError } from './errors';

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
    void (app?.stop() ?? Promise.resolve()).then(() => process.exit(process.exitCode ?? 0));
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
      const message = err instanceof ConfigError || err instanceof StartupError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`${name}: failed to start: ${message}\n`);
      process.exit(1);
    });
}

/**
 * The default reaction to a component that is down for good (e.g. a Kafka consumer kafkajs will
 * not restart): log it, set exit code 1 and stop gracefully through the SIGTERM path, so the
 * orchestrator (or the developer) starts a fresh process.
 */
export function exitOnFatal(log: { fatal(obj: object, msg: string): void }): (error: Error) => void {
  return (error) => {
    log.fatal({ err: error }, 'unrecoverable failure; stopping the process so it is restarted');
    process.exitCode = 1;
    process.kill(process.pid, 'SIGTERM');
  };
}

// Register cleanup as you acquire; stop runs it in reverse order, each step bounded, the whole
// within a deadline (default 10 s, under Kubernetes' 30 s terminationGracePeriodSeconds).
import type { Logger } from './logger';

export class Lifecycle {
  private readonly steps: { name: string; stop: () => Promise<void> | void }[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  /** Remember how to undo what was just acquired. */
  defer(name: string, stop: () => Promise<void> | void): void {
    this.steps.push({ name, stop });
  }

  /** Runs every deferred step once, last acquired first. Safe to call twice. */
  stop(deadlineMs = 10_000): Promise<void> {
    this.stopping ??= this.run(deadlineMs);
    return this.stopping;
  }

  private async run(deadlineMs: number): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (const step of this.steps.reverse()) {
      const left = Math.max(end - Date.now(), 100);
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(step.stop),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${left} ms`)), left);
          }),
        ]);
        this.log.info({ step: step.name }, 'stopped');
      } catch (err) {
        this.log.warn({ step: step.name, err }, 'stop step failed');
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

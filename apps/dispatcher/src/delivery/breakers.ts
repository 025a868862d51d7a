// Circuit breakers per endpoint, one per replica: which endpoints get only probes.
import type { Logger } from '@hookline/service-kit';

/**
 * Circuit breakers per endpoint: after `threshold` attempts in a row failed, an endpoint gets one
 * probe attempt per `probeMs` (per replica) until one succeeds; its other due tasks are put back in
 * their tier without an attempt. A dead endpoint with 10,000 retries then costs a probe a second
 * and some Kafka records, not 10,000 attempts, attempt-log inserts and retry records per cycle,
 * which is what let one tenant's outage take the CPU every other tenant's deliveries need.
 */
export class Breakers {
  private readonly state = new Map<string, { failures: number; probeAt: number; openedAt: number }>();
  constructor(
    private readonly threshold: number,
    private readonly probeMs: number,
    private readonly log?: Logger,
  ) {}

  /** True when a task for this endpoint may be attempted now (closed, or the next probe is due). */
  allow(key: string, now: number): boolean {
    const s = this.state.get(key);
    if (!s || this.threshold === 0 || s.failures < this.threshold) return true;
    if (now < s.probeAt) return false;
    s.probeAt = now + this.probeMs;
    return true;
  }

  record(key: string, succeeded: boolean, now: number): void {
    if (this.threshold === 0) return;
    const s = this.state.get(key);
    if (succeeded) {
      if (s && s.failures >= this.threshold) this.log?.info({ endpoint: key, failures: s.failures }, 'endpoint answered again: circuit closed');
      this.state.delete(key);
      return;
    }
    if (!s) return void this.state.set(key, { failures: 1, probeAt: 0, openedAt: 0 });
    s.failures++;
    if (s.failures === this.threshold) {
      s.probeAt = now + this.probeMs;
      s.openedAt = now;
      this.log?.info({ endpoint: key, failures: s.failures }, 'endpoint failing: circuit open, one probe attempt per interval');
    }
  }

  /** True while the endpoint gets only probes. */
  isOpen(key: string): boolean {
    const s = this.state.get(key);
    return s !== undefined && this.threshold > 0 && s.failures >= this.threshold;
  }

  /** How long this endpoint's circuit has been open (0 when closed). */
  openForMs(key: string, now: number): number {
    const s = this.state.get(key);
    return s && this.threshold > 0 && s.failures >= this.threshold ? now - s.openedAt : 0;
  }

  get open(): number {
    let n = 0;
    for (const s of this.state.values()) if (s.failures >= this.threshold) n++;
    return n;
  }
}

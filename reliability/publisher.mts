// A steady publisher: events are due at a fixed rate; a bounded pool of workers sends each with
// PublishEvent and its idempotency key, retrying UNAVAILABLE / DEADLINE_EXCEEDED (broker or
// database outage) with the SAME key until OK or the give-up time. An event counts as
// acknowledged only on an OK answer.
import * as grpc from '@grpc/grpc-js';
import { eventsV1 } from '@hookline/proto';
import { clientCredentials, sleep } from './stack.mts';

export interface PlannedEvent {
  workspaceId: string;
  eventType: string;
  key: string;
  rid: string;
  payload: Buffer;
}

export interface Ack {
  eventId: string;
  at: number;
  attempts: number;
  duplicate: boolean;
}

export interface PublishReport {
  published: number;
  acked: Map<string, Ack>; // by rid
  /** rid → final non-OK code for events never acknowledged. */
  unacked: Map<string, string>;
  /** Non-OK answers seen along the way, by code name (retried ones included). */
  codes: Map<string, number>;
  /** Answers that were neither OK nor a retryable outage: wrong statuses for valid input. */
  wrong: { rid: string; code: string; details: string }[];
  durationMs: number;
}

const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.ABORTED]);

export class Publisher {
  private client: eventsV1.EventIngestServiceClient;
  constructor(address: string) {
    this.client = new eventsV1.EventIngestServiceClient(address, clientCredentials(), { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 1_000 });
  }

  close(): void {
    this.client.close();
  }

  publishOnce(e: PlannedEvent, timeoutMs = 12_000): Promise<eventsV1.PublishEventResponse> {
    return new Promise((resolve, reject) =>
      this.client.publishEvent(
        { event: { workspaceId: e.workspaceId, eventType: e.eventType, payload: e.payload, idempotencyKey: e.key } },
        new grpc.Metadata(),
        { deadline: new Date(Date.now() + timeoutMs) },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
  }

  /**
   * Sends `events` at `ratePerSec` with at most `concurrency` calls in flight. `onProgress` gets
   * the fraction of events *due* so far (drives fault timing). Each event is retried until
   * `giveUpMs` after it was due.
   */
  async run(events: PlannedEvent[], ratePerSec: number, concurrency: number, giveUpMs: number, onAck?: (rid: string, a: Ack) => void): Promise<PublishReport> {
    const report: PublishReport = { published: 0, acked: new Map(), unacked: new Map(), codes: new Map(), wrong: [], durationMs: 0 };
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= events.length) return;
        const dueAt = t0 + (i * 1000) / ratePerSec;
        if (dueAt > Date.now()) await sleep(dueAt - Date.now());
        const e = events[i]!;
        report.published++;
        let attempts = 0;
        let backoff = 200;
        for (;;) {
          attempts++;
          try {
            const res = await this.publishOnce(e);
            const ack = { eventId: res.eventId, at: Date.now(), attempts, duplicate: res.duplicate };
            report.acked.set(e.rid, ack);
            onAck?.(e.rid, ack);
            break;
          } catch (err) {
            const code = (err as grpc.ServiceError).code ?? grpc.status.UNKNOWN;
            const name = grpc.status[code] ?? String(code);
            report.codes.set(name, (report.codes.get(name) ?? 0) + 1);
            if (!RETRYABLE.has(code)) {
              report.wrong.push({ rid: e.rid, code: name, details: String((err as grpc.ServiceError).details ?? err).slice(0, 200) });
              report.unacked.set(e.rid, name);
              break;
            }
            if (Date.now() - dueAt > giveUpMs) {
              report.unacked.set(e.rid, name);
              break;
            }
            await sleep(backoff);
            backoff = Math.min(backoff * 2, 2_000);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    report.durationMs = Date.now() - t0;
    return report;
  }
}

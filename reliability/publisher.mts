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

/** Events to send: an array, or a source that builds each event when it is due (soak: hundreds of thousands). */
export interface EventSource {
  readonly length: number;
  at(i: number): PlannedEvent | undefined;
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

  /** PublishEvents: one result per item, in order. */
  publishBatchOnce(events: PlannedEvent[], timeoutMs = 30_000): Promise<eventsV1.PublishEventsResponse> {
    return new Promise((resolve, reject) =>
      this.client.publishEvents(
        { events: events.map((e) => ({ workspaceId: e.workspaceId, eventType: e.eventType, payload: e.payload, idempotencyKey: e.key })) },
        new grpc.Metadata(),
        { deadline: new Date(Date.now() + timeoutMs) },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
  }

  /**
   * Sends `events` at `ratePerSec` with at most `concurrency` calls in flight. Each event is
   * retried until `giveUpMs` after it was due. `stop` ends the stream early (events not yet due
   * are not sent and not counted).
   */
  async run(events: EventSource, ratePerSec: number, concurrency: number, giveUpMs: number, opts: { onAck?: (rid: string, a: Ack) => void; stop?: () => boolean } = {}): Promise<PublishReport> {
    const { onAck, stop } = opts;
    const report: PublishReport = { published: 0, acked: new Map(), unacked: new Map(), codes: new Map(), wrong: [], durationMs: 0 };
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= events.length || stop?.()) return;
        const dueAt = t0 + (i * 1000) / ratePerSec;
        if (dueAt > Date.now()) await sleep(dueAt - Date.now());
        if (stop?.()) return;
        const e = events.at(i)!;
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

  /**
   * As fast as the service takes them: PublishEvents calls of `batchSize` items, `concurrency` at
   * once. Items (or whole calls) answered UNAVAILABLE / DEADLINE_EXCEEDED are sent again with the
   * same keys until `giveUpMs` after their call first went out; every other item error is wrong.
   */
  async runBatches(events: PlannedEvent[], batchSize: number, concurrency: number, giveUpMs: number): Promise<PublishReport> {
    const report: PublishReport = { published: 0, acked: new Map(), unacked: new Map(), codes: new Map(), wrong: [], durationMs: 0 };
    const t0 = Date.now();
    const count = (name: string) => report.codes.set(name, (report.codes.get(name) ?? 0) + 1);
    let next = 0;
    const worker = async () => {
      for (;;) {
        const from = next;
        next += batchSize;
        if (from >= events.length) return;
        let todo = events.slice(from, from + batchSize);
        report.published += todo.length;
        const giveUpAt = Date.now() + giveUpMs;
        let backoff = 200;
        while (todo.length > 0) {
          let res: eventsV1.PublishEventsResponse;
          try {
            res = await this.publishBatchOnce(todo);
          } catch (err) {
            const code = (err as grpc.ServiceError).code ?? grpc.status.UNKNOWN;
            const name = grpc.status[code] ?? String(code);
            count(name);
            if (!RETRYABLE.has(code) || Date.now() > giveUpAt) {
              for (const e of todo) report.unacked.set(e.rid, name);
              if (!RETRYABLE.has(code)) report.wrong.push({ rid: todo[0]!.rid, code: name, details: `whole batch of ${todo.length}: ${String((err as grpc.ServiceError).details ?? err).slice(0, 200)}` });
              break;
            }
            await sleep(backoff);
            backoff = Math.min(backoff * 2, 2_000);
            continue;
          }
          const again: PlannedEvent[] = [];
          const at = Date.now();
          res.results.forEach((r, i) => {
            const e = todo[i]!;
            if (r.outcome?.$case === 'accepted') {
              report.acked.set(e.rid, { eventId: r.outcome.value.eventId, at, attempts: 1, duplicate: r.outcome.value.duplicate });
              return;
            }
            const code = r.outcome?.$case === 'error' ? r.outcome.value.code : grpc.status.UNKNOWN;
            const name = grpc.status[code] ?? String(code);
            count(name);
            if (RETRYABLE.has(code) && Date.now() <= giveUpAt) again.push(e);
            else {
              report.unacked.set(e.rid, name);
              if (!RETRYABLE.has(code)) report.wrong.push({ rid: e.rid, code: name, details: r.outcome?.$case === 'error' ? r.outcome.value.message.slice(0, 200) : 'no outcome' });
            }
          });
          if (res.results.length < todo.length) for (const e of todo.slice(res.results.length)) report.unacked.set(e.rid, 'NO_RESULT');
          todo = again;
          if (todo.length > 0) {
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

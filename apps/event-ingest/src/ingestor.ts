// The acceptance pipeline shared by the gRPC API and the Kafka ingest topic:
// validate → claim idempotency keys → produce (acks=all) → mark published.
import { status } from '@grpc/grpc-js';
import type { eventsV1 } from '@hookline/proto';
import { eventTypeProblem, workspaceIdProblem } from '@hookline/schemas';
import { ServiceError, timeOrderedId, unavailable, Violations, type FieldViolation } from '@hookline/service-kit';
import type { Catalog } from './catalog/catalog';
import type { IdempotencyStore } from './idempotency/idempotency-store';
import type { AcceptedEvent, EventSink } from './publish/event-publisher';

export const MAX_IDEMPOTENCY_KEY = 256;
export const MAX_BATCH = 1000;

export type ItemOutcome = { ok: true; eventId: string; duplicate: boolean; createdAt: Date } | { ok: false; error: ServiceError };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class Ingestor {
  constructor(
    private readonly catalog: Catalog,
    private readonly keys: IdempotencyStore,
    private readonly sink: EventSink,
    private readonly maxPayloadBytes: number,
    /** How long a call waits for a concurrent call with the same key to finish (default 3 s). */
    private readonly concurrentWaitMs = 3_000,
  ) {}

  /** Every check PublishEvent makes, without publishing. Throws ServiceError. */
  async validate(e: eventsV1.EventInput, prefix = 'event'): Promise<void> {
    const v = new Violations();
    const ws = workspaceIdProblem(e.workspaceId);
    if (ws) v.add(`${prefix}.workspace_id`, ws);
    const et = eventTypeProblem(e.eventType);
    if (et) v.add(`${prefix}.event_type`, et);
    if (e.idempotencyKey.length > MAX_IDEMPOTENCY_KEY) v.add(`${prefix}.idempotency_key`, `must be at most ${MAX_IDEMPOTENCY_KEY} characters`);
    let payload: unknown;
    if (e.payload.length === 0) v.add(`${prefix}.payload`, 'is required: a JSON document');
    else if (e.payload.length > this.maxPayloadBytes) v.add(`${prefix}.payload`, `is ${e.payload.length} bytes; the limit is ${this.maxPayloadBytes} bytes`);
    else {
      try {
        payload = JSON.parse(utf8.decode(e.payload));
      } catch (err) {
        v.add(`${prefix}.payload`, err instanceof SyntaxError ? `is not valid JSON (${err.message})` : 'is not valid UTF-8');
      }
    }
    v.throwIfAny();
    const entry = await this.catalog.get(e.eventType);
    const problems = entry.validate(payload);
    if (problems.length > 0) {
      const violations: FieldViolation[] = problems.map((p) => ({ field: `${prefix}.payload${p.path}`, description: p.message }));
      throw new ServiceError(status.INVALID_ARGUMENT, `payload does not match the schema of ${e.eventType}: ${violations.map((x) => `${x.field} ${x.description}`).join('; ')}`, violations);
    }
  }

  /** Validates and publishes each item independently; one result per item, in order. */
  async publish(items: eventsV1.EventInput[], fieldPrefix: (i: number) => string): Promise<ItemOutcome[]> {
    const outcomes: (ItemOutcome | undefined)[] = new Array(items.length);
    await Promise.all(
      items.map(async (e, i) => {
        try {
          await this.validate(e, fieldPrefix(i));
        } catch (err) {
          outcomes[i] = { ok: false, error: asServiceError(err) };
        }
      }),
    );

    // Claim keys. A key repeated inside the batch is a duplicate of its first occurrence.
    const toSend: AcceptedEvent[] = [];
    const claimed: { i: number; workspaceId: string; key: string }[] = [];
    const firstInBatch = new Map<string, number>();
    const sameAs = new Map<number, number>();
    await Promise.all(
      items.map(async (e, i) => {
        if (outcomes[i]) return;
        const createdAt = new Date();
        const eventId = timeOrderedId('evt');
        if (!e.idempotencyKey) {
          toSend.push({ eventId, workspaceId: e.workspaceId, eventType: e.eventType, payload: e.payload, createdAt });
          outcomes[i] = { ok: true, eventId, duplicate: false, createdAt };
          return;
        }
        const batchKey = `${e.workspaceId}\u0000${e.idempotencyKey}`;
        const first = firstInBatch.get(batchKey);
        if (first !== undefined) return void sameAs.set(i, first);
        firstInBatch.set(batchKey, i);
        try {
          const claim = await this.claimWaiting(e.workspaceId, e.idempotencyKey, eventId, createdAt);
          if (claim.kind === 'duplicate') outcomes[i] = { ok: true, eventId: claim.eventId, duplicate: true, createdAt: claim.createdAt };
          else {
            toSend.push({ eventId: claim.eventId, workspaceId: e.workspaceId, eventType: e.eventType, payload: e.payload, createdAt: claim.createdAt });
            claimed.push({ i, workspaceId: e.workspaceId, key: e.idempotencyKey });
            outcomes[i] = { ok: true, eventId: claim.eventId, duplicate: false, createdAt: claim.createdAt };
          }
        } catch (err) {
          outcomes[i] = { ok: false, error: asServiceError(err) };
        }
      }),
    );

    try {
      await this.sink.publish(toSend);
    } catch (err) {
      const byWs = groupKeys(claimed);
      await Promise.all([...byWs].map(([ws, keys]) => this.keys.release(ws, keys))).catch(() => undefined);
      const failure = unavailable('the event broker did not acknowledge; nothing was published; retry with backoff', err);
      for (const s of toSend) {
        const i = outcomes.findIndex((o) => o?.ok && o.eventId === s.eventId);
        if (i >= 0) outcomes[i] = { ok: false, error: failure };
      }
    }
    const published = claimed.filter((c) => outcomes[c.i]?.ok);
    await Promise.all([...groupKeys(published)].map(([ws, keys]) => this.keys.markPublished(ws, keys)));

    for (const [i, first] of sameAs) {
      const o = outcomes[first]!;
      outcomes[i] = o.ok ? { ...o, duplicate: true } : o;
    }
    return outcomes.map((o) => o!);
  }

  /** Waits (bounded) while a concurrent call holds the same key. */
  private async claimWaiting(workspaceId: string, key: string, eventId: string, createdAt: Date) {
    const until = Date.now() + this.concurrentWaitMs;
    for (;;) {
      const claim = await this.keys.claim(workspaceId, key, eventId, createdAt);
      if (claim.kind !== 'in-progress') return claim;
      if (Date.now() > until) throw unavailable(`another request with idempotency_key "${key}" is still being published; retry shortly`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function groupKeys(items: { workspaceId: string; key: string }[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const { workspaceId, key } of items) m.set(workspaceId, [...(m.get(workspaceId) ?? []), key]);
  return m;
}

function asServiceError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  return unavailable('a backing service is unavailable; retry with backoff', err);
}

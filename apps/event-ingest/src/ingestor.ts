// The acceptance pipeline shared by the gRPC API and the Kafka ingest topic, in named stages:
// validate → claim idempotency keys → produce (acks=all) → mark published.
import { status } from '@grpc/grpc-js';
import type { eventsV1 } from '@hookline/proto';
import { eventTypeProblem, workspaceIdProblem } from '@hookline/schemas';
import { ServiceError, timeOrderedId, unavailable, Violations, type FieldViolation, type Logger } from '@hookline/service-kit';
import type { Catalog } from './catalog/catalog';
import { asServiceError } from './errors';
import type { ClaimRequest, ClaimResult, IdempotencyStore } from './idempotency/idempotency-store';
import { PartialPublishError, type AcceptedEvent, type EventSink } from './publish/event-publisher';
import { NO_INGEST_METRICS, type IngestCounters, type Transport } from './metrics';

export const MAX_IDEMPOTENCY_KEY = 256;
export const MAX_BATCH = 1000;

export type ItemOutcome = { ok: true; eventId: string; duplicate: boolean; createdAt: Date } | { ok: false; error: ServiceError };

export interface PublishOptions {
  /**
   * Kafka path: items are a partition's messages in offset order, and the caller commits the
   * leading run of finished items. So nothing at or after the first item that must be retried
   * is published (it would be published again when the retry re-reads it); those items answer
   * UNAVAILABLE. The gRPC batch leaves this off: its items are independent.
   */
  ordered?: boolean;
  /** For metrics: where the items came from (default grpc). */
  transport?: Transport;
  /**
   * Count failed items as `rejected` (default true). The Kafka path says false: its failures are
   * either retried (not a rejection) or dead-lettered, and counted there.
   */
  countRejected?: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A claim that is no longer in progress: claimed, duplicate, or the error to answer. */
type SettledClaim = Exclude<ClaimResult, { kind: 'in-progress' }> | { kind: 'failed'; error: unknown };

const notAttempted = () => unavailable('not attempted: an earlier item must be retried first');

/** Small interface of what the Ingestor needs from the catalog (see STYLE rule 4). */
type EventTypes = Pick<Catalog, 'get'>;

export class Ingestor {
  constructor(
    private readonly catalog: EventTypes,
    private readonly keys: IdempotencyStore,
    private readonly sink: EventSink,
    private readonly maxPayloadBytes: number,
    private readonly log?: Logger,
    /** How long a call waits for a concurrent call with the same key to finish (default 5 s). */
    private readonly concurrentWaitMs = 5_000,
    private readonly metrics: IngestCounters = NO_INGEST_METRICS,
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
    else if (e.payload.length > this.maxPayloadBytes) v.add(`${prefix}.payload`, `is ${e.payload.length} bytes; the limit is ${this.maxPayloadBytes} bytes (${formatBytes(this.maxPayloadBytes)})`);
    else {
      let text: string | undefined;
      try {
        text = utf8.decode(e.payload);
      } catch {
        v.add(`${prefix}.payload`, 'is not valid UTF-8');
      }
      if (text !== undefined) {
        try {
          payload = JSON.parse(text);
        } catch (err) {
          v.add(`${prefix}.payload`, `is not valid JSON (${(err as Error).message})`);
        }
      }
    }
    v.throwIfAny();
    const entry = await this.catalog.get(e.eventType);
    const problems = entry.validate(payload);
    if (problems.length > 0) {
      const violations: FieldViolation[] = problems.map((p) => ({ field: `${prefix}.payload${p.path}`, description: p.message }));
      throw new ServiceError(
        status.INVALID_ARGUMENT,
        `payload does not match the schema of ${e.eventType} (version ${entry.version}): ${violations.map((x) => `${x.field} ${x.description}`).join('; ')}`,
        violations,
      );
    }
  }

  /** Validates and publishes each item; one result per item, in order. */
  async publish(items: eventsV1.EventInput[], fieldPrefix: (i: number) => string, options: PublishOptions = {}): Promise<ItemOutcome[]> {
    const outcomes: (ItemOutcome | undefined)[] = new Array(items.length);
    const fail = (i: number, err: unknown) => {
      const error = asServiceError(err);
      if (error.code === status.INTERNAL) this.log?.error({ err }, 'unexpected failure accepting an event');
      outcomes[i] = { ok: false, error };
    };

    // Stage 1: validate.
    await Promise.all(items.map((e, i) => this.validate(e, fieldPrefix(i)).catch((err: unknown) => fail(i, err))));
    let limit = options.ordered ? firstRetryable(outcomes, items.length) : items.length;

    // Stage 2: claim keys, all of the batch in one round trip. A key repeated inside the batch is
    // a duplicate of its first occurrence.
    const fresh: { i: number; event: AcceptedEvent; key?: string }[] = [];
    const keyed: { i: number; base: Omit<AcceptedEvent, 'eventId' | 'createdAt'>; request: ClaimRequest }[] = [];
    const firstInBatch = new Map<string, number>();
    const sameAs = new Map<number, number>();
    for (let i = 0; i < limit; i++) {
      if (outcomes[i]) continue;
      const e = items[i]!;
      const createdAt = new Date();
      const eventId = timeOrderedId('evt');
      const base = { workspaceId: e.workspaceId, eventType: e.eventType, payload: e.payload };
      if (!e.idempotencyKey) {
        fresh.push({ i, event: { ...base, eventId, createdAt } });
        continue;
      }
      const batchKey = `${e.workspaceId}\u0000${e.idempotencyKey}`;
      const first = firstInBatch.get(batchKey);
      if (first !== undefined) {
        sameAs.set(i, first);
        continue;
      }
      firstInBatch.set(batchKey, i);
      keyed.push({ i, base, request: { workspaceId: e.workspaceId, key: e.idempotencyKey, eventId, createdAt } });
    }
    const claims = await this.claimWaiting(keyed.map((k) => k.request));
    keyed.forEach(({ i, base, request }, n) => {
      const claim = claims[n]!;
      if (claim.kind === 'failed') fail(i, claim.error);
      else if (claim.kind === 'duplicate') outcomes[i] = { ok: true, eventId: claim.eventId, duplicate: true, createdAt: claim.createdAt };
      else fresh.push({ i, key: request.key, event: { ...base, eventId: claim.eventId, createdAt: claim.createdAt } });
    });
    if (options.ordered) limit = Math.min(limit, firstRetryable(outcomes, limit));
    // Keys claimed beyond the limit are handed back untouched; a retry claims them again.
    const [toSend, notSent] = partition(fresh.sort((a, b) => a.i - b.i), (f) => f.i < limit);
    await this.abandon(notSent);

    // Stage 3: produce. Resolves only after every in-sync replica acknowledged.
    try {
      await this.sink.publish(toSend.map((f) => f.event));
      for (const f of toSend) outcomes[f.i] = { ok: true, eventId: f.event.eventId, duplicate: false, createdAt: f.event.createdAt };
    } catch (err) {
      const acked = err instanceof PartialPublishError ? err.acknowledged : 0;
      this.log?.warn({ err, events: toSend.length, acked }, 'the broker did not acknowledge; answering UNAVAILABLE');
      const failed = toSend.slice(acked);
      await this.abandon(failed);
      const failure = unavailable('the event broker did not acknowledge; retry with backoff (a retry with the same idempotency_key never publishes twice)', err);
      toSend.forEach((f, n) => (outcomes[f.i] = n < acked ? { ok: true, eventId: f.event.eventId, duplicate: false, createdAt: f.event.createdAt } : { ok: false, error: failure }));
    }

    // Stage 4: remember the keys as published. The events are already durable, so a failure here
    // must not turn "accepted" into an error: the claim stays pending, and a repeat after the claim
    // lapses re-publishes under the SAME event id (a duplicate receivers drop on X-Webhook-Id).
    const published = toSend.filter((f) => f.key !== undefined && outcomes[f.i]?.ok).map((f) => ({ workspaceId: f.event.workspaceId, key: f.key!, eventId: f.event.eventId }));
    await this.keys.markPublished(published).catch((err: unknown) => this.log?.warn({ err, keys: published.length }, 'could not mark idempotency keys as published'));

    for (const [i, first] of sameAs) {
      const o = outcomes[first];
      outcomes[i] = o === undefined ? { ok: false, error: notAttempted() } : o.ok ? { ...o, duplicate: true } : o;
    }
    for (let i = 0; i < items.length; i++) outcomes[i] ??= { ok: false, error: notAttempted() };
    this.count(outcomes as ItemOutcome[], options);
    return outcomes as ItemOutcome[];
  }

  private count(outcomes: ItemOutcome[], options: PublishOptions): void {
    const transport = options.transport ?? 'grpc';
    let accepted = 0;
    let duplicate = 0;
    const rejected = new Map<string, number>();
    for (const o of outcomes) {
      if (o.ok && o.duplicate) duplicate++;
      else if (o.ok) accepted++;
      else {
        const code = status[o.error.code] ?? String(o.error.code);
        rejected.set(code, (rejected.get(code) ?? 0) + 1);
      }
    }
    this.metrics.events('accepted', transport, accepted);
    this.metrics.events('duplicate', transport, duplicate);
    if (options.countRejected ?? true) for (const [code, n] of rejected) this.metrics.events('rejected', transport, n, code);
  }

  /**
   * Hands back claims whose events did not get (or may not have got) an acknowledgement. The
   * claim is kept with its event id but marked abandoned, so the retry publishes under the same id:
   * if the failed produce did reach the broker after all, receivers see one id twice, never two
   * different events.
   */
  private async abandon(claims: { key?: string; event: AcceptedEvent }[]): Promise<void> {
    const keyed = claims.filter((c) => c.key !== undefined).map((c) => ({ workspaceId: c.event.workspaceId, key: c.key! }));
    await Promise.all(
      [...groupKeys(keyed)].map(([ws, keys]) =>
        this.keys.release(ws, keys).catch((err: unknown) => this.log?.warn({ err, workspaceId: ws }, 'could not release idempotency claims; they lapse on their own')),
      ),
    );
  }

  /**
   * Claims the keys; waits (bounded) while concurrent calls hold some of them, re-asking for those
   * alone. One result per request.
   */
  private async claimWaiting(requests: ClaimRequest[]): Promise<SettledClaim[]> {
    const results: SettledClaim[] = new Array(requests.length);
    let open = requests.map((_, n) => n);
    const until = Date.now() + this.concurrentWaitMs;
    for (let delay = 20; open.length > 0; delay = Math.min(delay * 2, 200)) {
      let answers: ClaimResult[];
      try {
        answers = await this.keys.claim(open.map((n) => requests[n]!));
      } catch (err) {
        for (const n of open) results[n] = { kind: 'failed', error: err };
        break;
      }
      const waiting: number[] = [];
      open.forEach((n, j) => {
        const a = answers[j]!;
        if (a.kind === 'in-progress') waiting.push(n);
        else results[n] = a;
      });
      open = waiting;
      if (open.length === 0) break;
      if (Date.now() > until) {
        for (const n of open) results[n] = { kind: 'failed', error: unavailable(`another request with idempotency_key "${requests[n]!.key}" is still being published; retry shortly`) };
        break;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
    return results;
  }
}

/** Index of the first item that failed for a reason other than its own content. */
function firstRetryable(outcomes: (ItemOutcome | undefined)[], end: number): number {
  for (let i = 0; i < end; i++) {
    const o = outcomes[i];
    if (o && !o.ok && ![status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION].includes(o.error.code)) return i;
  }
  return end;
}

function partition<T>(xs: T[], pred: (x: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const x of xs) (pred(x) ? yes : no).push(x);
  return [yes, no];
}

function groupKeys(items: { workspaceId: string; key: string }[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const item of items) m.set(item.workspaceId, [...(m.get(item.workspaceId) ?? []), item.key]);
  return m;
}

function formatBytes(n: number): string {
  return n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

// The Kafka ingestion path: a consumer group on the ingest topic (default webhooks.ingest.v1)
// putting every record through the same Ingestor as gRPC PublishEvent.
//
// Per partition, in offset order, each record ends in exactly one of:
//   published   valid: on the events topic (acks=all), idempotency key marked
//   dead-letter its own content is wrong (bad envelope, unknown type, schema, size, JSON): copied
//               to the DLQ topic with the reason in hookline-* headers
//   retry       a dependency (broker, registry, database) is unavailable: nothing is committed,
//               the same record is tried again with backoff; never dead-lettered
// Offsets are committed only for the leading run of records whose outcome is durable, so a crash
// at any point re-reads (at least once) and never skips. With an idempotency-key header the re-read
// is answered as a duplicate and publishes nothing new.
import { isRebalanceError } from '@hookline/kafka';
import { status } from '@grpc/grpc-js';
import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import type { Logger, ServiceError } from '@hookline/service-kit';
import { disposition } from '../errors';
import type { Ingestor } from '../ingestor';
import { decodeEnvelope, envelopeField, KAFKA_FIELD_PREFIX } from './envelope';
import { NO_INGEST_METRICS, type IngestCounters } from '../metrics';

export interface IngestConsumerOptions {
  topic: string;
  dlqTopic: string;
  groupId: string;
  /** Records handed to the Ingestor at once (default 100). */
  chunkSize?: number;
  /** An unexpected (INTERNAL) failure of one record is retried this often, then dead-lettered (default 3). */
  maxInternalAttempts?: number;
  /** Retry backoff: doubles from min to max (defaults 200 ms → 5 s). */
  backoffMs?: { min: number; max: number };
}

/** What the consumer needs from the Ingestor (STYLE rule 4). */
export type IngestPipeline = Pick<Ingestor, 'validate' | 'publish'>;

/** DLQ records keep the original value up to this size (the topic's 1 MiB limit, minus headers). */
const DLQ_VALUE_MAX = 900 * 1024;
const DLQ_TEXT_MAX = 2_000;
const DLQ_VIOLATIONS_MAX = 50;

type Verdict = { kind: 'ok' } | { kind: 'dead-letter'; error: ServiceError } | { kind: 'retry'; error: ServiceError };

export class KafkaIngestConsumer {
  private consumer: Consumer | undefined;
  private readonly internalAttempts = new Map<string, number>();
  private readonly chunkSize: number;
  private readonly maxInternalAttempts: number;
  private readonly backoff: { min: number; max: number };

  constructor(
    private readonly kafka: Kafka,
    private readonly producer: Producer,
    private readonly ingestor: IngestPipeline,
    private readonly options: IngestConsumerOptions,
    private readonly log: Logger,
    private readonly metrics: IngestCounters = NO_INGEST_METRICS,
  ) {
    this.chunkSize = options.chunkSize ?? 100;
    this.maxInternalAttempts = options.maxInternalAttempts ?? 3;
    this.backoff = options.backoffMs ?? { min: 200, max: 5_000 };
  }

  /** `watch` sees the consumer before it runs (a crash of its first join is reported too). */
  async start(watch?: (consumer: Consumer) => void): Promise<void> {
    const consumer = this.kafka.consumer({ groupId: this.options.groupId, sessionTimeout: 30_000, heartbeatInterval: 3_000, allowAutoTopicCreation: false });
    this.consumer = consumer;
    watch?.(consumer);
    await consumer.connect();
    // A new group starts at the beginning: records written before the first deployment (or while
    // every replica was down) are ingested, not skipped.
    await consumer.subscribe({ topic: this.options.topic, fromBeginning: true });
    await this.run();
    this.log.info({ topic: this.options.topic, group: this.options.groupId, dlq: this.options.dlqTopic }, 'kafka ingest consumer running');
  }

  /** Runs the started consumer (again, after a crash kafkajs does not restart from). */
  run(): Promise<void> {
    return this.consumer!.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: (payload) => this.eachBatch(payload),
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }

  private async eachBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch;
    let next = 0;
    let failures = 0;
    while (next < batch.messages.length && isRunning() && !isStale()) {
      const chunk = batch.messages.slice(next, next + this.chunkSize);
      const done = await this.handleChunk(topic, partition, chunk).catch((err: unknown) => {
        this.log.warn({ err, topic, partition }, 'ingest chunk failed; retrying');
        return 0;
      });
      if (done > 0) {
        const last = chunk[done - 1]!.offset;
        resolveOffset(last);
        // The one place offsets move: only past records whose outcome is durable.
        try {
          await this.consumer!.commitOffsets([{ topic, partition, offset: (BigInt(last) + 1n).toString() }]);
        } catch (err) {
          // The partition moved: its new owner re-reads these records (idempotency keys make the
          // replay harmless). Thrown into kafkajs, this error would end the consumer for good.
          if (!isRebalanceError(err)) throw err;
          this.log.info({ topic, partition, err }, 'partition moved; leaving the rest of the batch to its new owner');
          return;
        }
        next += done;
        failures = 0;
      }
      if (done < chunk.length) {
        failures += 1;
        const delay = Math.min(this.backoff.min * 2 ** (failures - 1), this.backoff.max);
        if (failures === 1 || failures % 10 === 0) this.log.warn({ topic, partition, offset: chunk[done]!.offset, failures, delayMs: delay }, 'ingest waiting for a dependency; will retry the record');
        await this.sleep(delay, isRunning, isStale);
      }
      await heartbeat().catch((err: unknown) => this.log.debug({ err }, 'heartbeat failed'));
    }
  }

  /** Handles records in order; returns how many leading records are finished (published or dead-lettered). */
  async handleChunk(topic: string, partition: number, messages: KafkaMessage[]): Promise<number> {
    // Stage 1: envelope + validation, to find the poison before anything is published.
    const verdicts: Verdict[] = await Promise.all(
      messages.map(async (m): Promise<Verdict> => {
        const decoded = decodeEnvelope(m);
        if (!decoded.ok) return { kind: 'dead-letter', error: decoded.error };
        try {
          await this.ingestor.validate(decoded.input, KAFKA_FIELD_PREFIX);
          return { kind: 'ok' };
        } catch (err) {
          return this.verdictFor(topic, partition, m, err as ServiceError);
        }
      }),
    );
    let cut = firstRetry(verdicts);

    // Stage 2: dead-letter the poison first: if this fails nothing was published, the chunk is retried.
    await this.deadLetter(topic, partition, messages.slice(0, cut), verdicts);

    // Stage 3: publish the valid records before the cut, in order.
    const valid: number[] = [];
    for (let i = 0; i < cut; i++) if (verdicts[i]!.kind === 'ok') valid.push(i);
    const inputs = valid.map((i) => (decodeEnvelope(messages[i]!) as { ok: true; input: Parameters<IngestPipeline['validate']>[0] }).input);
    const outcomes = await this.ingestor.publish(inputs, () => KAFKA_FIELD_PREFIX, { ordered: true, transport: 'kafka', countRejected: false });
    const late: Verdict[] = new Array(messages.length).fill({ kind: 'ok' });
    for (let n = 0; n < valid.length; n++) {
      const o = outcomes[n]!;
      const i = valid[n]!;
      if (o.ok) continue;
      // Poison now although valid a moment ago: the schema changed in between.
      late[i] = this.verdictFor(topic, partition, messages[i]!, o.error);
      if (late[i]!.kind === 'retry') {
        cut = Math.min(cut, i);
        break;
      }
    }
    await this.deadLetter(topic, partition, messages.slice(0, cut), late);
    for (const m of messages.slice(0, cut)) this.internalAttempts.delete(attemptKey(topic, partition, m));
    return cut;
  }

  private verdictFor(topic: string, partition: number, m: KafkaMessage, error: ServiceError): Verdict {
    const d = disposition(error);
    if (d === 'poison') return { kind: 'dead-letter', error };
    if (d === 'retry') return { kind: 'retry', error };
    // INTERNAL: maybe a bug triggered by this very record. Retried a few times, then dead-lettered,
    // so one record can never stall its partition forever.
    const key = attemptKey(topic, partition, m);
    const attempts = (this.internalAttempts.get(key) ?? 0) + 1;
    this.internalAttempts.set(key, attempts);
    this.log.error({ err: error.cause ?? error, topic, partition, offset: m.offset, attempts }, 'unexpected failure ingesting a record');
    return attempts >= this.maxInternalAttempts ? { kind: 'dead-letter', error } : { kind: 'retry', error };
  }

  private async deadLetter(topic: string, partition: number, messages: KafkaMessage[], verdicts: Verdict[]): Promise<void> {
    const records: Message[] = [];
    messages.forEach((m, i) => {
      const v = verdicts[i]!;
      if (v.kind === 'dead-letter') records.push(dlqRecord(topic, partition, m, v.error));
    });
    if (records.length === 0) return;
    await this.producer.send({ topic: this.options.dlqTopic, acks: -1, messages: records });
    for (const r of records) this.metrics.events('rejected', 'kafka', 1, String(r.headers?.[DLQ_HEADERS.code] ?? 'UNKNOWN'));
    this.log.info({ topic, partition, count: records.length, dlq: this.options.dlqTopic }, 'records dead-lettered');
  }

  private async sleep(ms: number, isRunning: () => boolean, isStale: () => boolean): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end && isRunning() && !isStale()) await new Promise((r) => setTimeout(r, Math.min(100, end - Date.now())));
  }
}

function firstRetry(verdicts: Verdict[]): number {
  const i = verdicts.findIndex((v) => v.kind === 'retry');
  return i < 0 ? verdicts.length : i;
}

const attemptKey = (topic: string, partition: number, m: KafkaMessage) => `${topic}/${partition}/${m.offset}`;

/** Names of the headers a DLQ record carries besides the original ones. */
export const DLQ_HEADERS = {
  code: 'hookline-error-code',
  message: 'hookline-error-message',
  field: 'hookline-error-field',
  violations: 'hookline-error-violations',
  sourceTopic: 'hookline-source-topic',
  sourcePartition: 'hookline-source-partition',
  sourceOffset: 'hookline-source-offset',
  sourceTimestamp: 'hookline-source-timestamp',
  deadLetteredAt: 'hookline-dead-lettered-at',
  valueTruncated: 'hookline-value-truncated',
} as const;

/** The original key, value and headers, plus the reason and where the record came from. */
export function dlqRecord(topic: string, partition: number, m: KafkaMessage, error: ServiceError): Message {
  const headers: IHeaders = {};
  // Original headers, except any hookline-* ones: those are ours, and a publisher must not be able
  // to forge a reason.
  for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined && !k.toLowerCase().startsWith('hookline-')) headers[k] = v;
  const violations = error.violations.slice(0, DLQ_VIOLATIONS_MAX).map((v) => ({ field: envelopeField(v.field), description: v.description }));
  headers[DLQ_HEADERS.code] = status[error.code] ?? String(error.code);
  headers[DLQ_HEADERS.message] = truncate(error.message.replace(new RegExp(`\\b${KAFKA_FIELD_PREFIX}\\.[A-Za-z_]+[^\\s:;]*`, 'g'), envelopeField), DLQ_TEXT_MAX);
  if (violations[0]) headers[DLQ_HEADERS.field] = violations[0].field;
  if (violations.length > 0) headers[DLQ_HEADERS.violations] = truncate(JSON.stringify(violations), 16 * 1024);
  headers[DLQ_HEADERS.sourceTopic] = topic;
  headers[DLQ_HEADERS.sourcePartition] = String(partition);
  headers[DLQ_HEADERS.sourceOffset] = m.offset;
  headers[DLQ_HEADERS.sourceTimestamp] = m.timestamp;
  headers[DLQ_HEADERS.deadLetteredAt] = new Date().toISOString();
  let value = m.value;
  if (value && value.length > DLQ_VALUE_MAX) {
    headers[DLQ_HEADERS.valueTruncated] = String(value.length);
    value = value.subarray(0, DLQ_VALUE_MAX);
  }
  return { key: m.key, value, headers };
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

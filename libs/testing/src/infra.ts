// Where the real broker and database are. scripts/test.sh starts them (deploy/local/infra.sh)
// and exports their addresses; tests never start or fake them.
import { randomBytes } from 'node:crypto';

export interface Infra {
  kafkaBrokers: string;
  mongoUri: string;
}

export function infraFromEnv(env: NodeJS.ProcessEnv = process.env): Infra {
  const kafkaBrokers = env.KAFKA_BROKERS;
  const mongoUri = env.MONGODB_URI;
  if (!kafkaBrokers || !mongoUri) {
    throw new Error('KAFKA_BROKERS and MONGODB_URI must be set: run the tests with `npm test` (it starts Kafka and FerretDB), or eval "$(deploy/local/infra.sh env)" first');
  }
  return { kafkaBrokers, mongoUri };
}

/** A random prefix so each test's topics, groups and databases are its own. */
export function uniquePrefix(label = 't'): string {
  return `${label}${randomBytes(4).toString('hex')}`;
}

/** Environment giving a service process its own topics, group and databases under `prefix`. */
export function isolatedServiceEnv(infra: Infra, prefix: string): Record<string, string> {
  return {
    KAFKA_BROKERS: infra.kafkaBrokers,
    MONGODB_URI: infra.mongoUri,
    KAFKA_TOPIC_EVENTS: `${prefix}.events`,
    KAFKA_TOPIC_INGEST: `${prefix}.ingest`,
    KAFKA_TOPIC_INGEST_DLQ: `${prefix}.ingest.dlq`,
    KAFKA_TOPIC_ENDPOINT_CHANGES: `${prefix}.endpoint-changes`,
    KAFKA_EVENTS_PARTITIONS: '4',
    KAFKA_INGEST_PARTITIONS: '2',
    KAFKA_TOPIC_OPERATIONS: `${prefix}.operations`,
    KAFKA_TOPIC_RETRY_PREFIX: `${prefix}.retry`,
    KAFKA_RETRY_PARTITIONS: '2',
    KAFKA_CONSUMER_GROUP: `${prefix}-dispatcher`,
  };
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

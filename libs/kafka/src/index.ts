// Kafka plumbing shared by the services: settings read through each service's config.ts,
// client construction with logs routed to pino, and idempotent topic creation.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type ITopicConfig, type LogEntry, type Producer, type SASLOptions } from 'kafkajs';
import { StartupError, type EnvReader, type Logger, type Readiness } from '@hookline/service-kit';
import { fixRequestQueue } from './request-queue-fix';

export interface TopicSpec {
  name: string;
  partitions: number;
  /** Extra topic configs, e.g. cleanup.policy=compact. */
  configs?: Record<string, string>;
}

export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface KafkaSettings {
  brokers: string[];
  clientId: string;
  /** TLS to the brokers; undefined = plaintext (the local Kafka). Files are read at connect. */
  tls: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string } | undefined;
  /** SASL credentials; the password is never logged (nor is this object). */
  sasl: { mechanism: SaslMechanism; username: string; password: string } | undefined;
  /** 0 = min(3, brokers in the cluster). */
  replicationFactor: number;
  topics: {
    events: TopicSpec;
    ingest: TopicSpec;
    ingestDlq: TopicSpec;
    endpointChanges: TopicSpec;
  };
}

/** Reads the KAFKA_* keys; shared so every service spells them the same way. */
export function readKafkaSettings(env: EnvReader, clientId: string): KafkaSettings {
  const brokers = env.list('KAFKA_BROKERS', ['127.0.0.1:19092']);
  const caFile = env.file('KAFKA_TLS_CA_FILE');
  const certFile = env.file('KAFKA_TLS_CERT_FILE');
  const keyFile = env.file('KAFKA_TLS_KEY_FILE');
  const serverName = env.optional('KAFKA_TLS_SERVER_NAME');
  const tlsOn = env.bool('KAFKA_TLS', Boolean(caFile || certFile || keyFile));
  if ((certFile === undefined) !== (keyFile === undefined)) env.problem('KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE must be set together');
  if (!tlsOn && (caFile || certFile || serverName)) env.problem('KAFKA_TLS=false contradicts the KAFKA_TLS_* settings');
  const mechanismRaw = env.optional('KAFKA_SASL_MECHANISM')?.toLowerCase();
  const mechanism = mechanismRaw as SaslMechanism | undefined;
  const username = env.secret('KAFKA_SASL_USERNAME');
  const password = env.secret('KAFKA_SASL_PASSWORD');
  let sasl: KafkaSettings['sasl'];
  if (mechanism !== undefined) {
    if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) env.problem(`KAFKA_SASL_MECHANISM=${JSON.stringify(mechanismRaw)} must be one of ${SASL_MECHANISMS.join(', ')}`);
    if (!username) env.problem('KAFKA_SASL_MECHANISM is set: KAFKA_SASL_USERNAME (or KAFKA_SASL_USERNAME_FILE) is required');
    if (!password) env.problem('KAFKA_SASL_MECHANISM is set: KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) is required');
    // SASL PLAIN and SCRAM over plaintext would put the password (PLAIN) or a replayable exchange on the wire.
    if (!tlsOn && !env.bool('KAFKA_SASL_ALLOW_PLAINTEXT', false)) env.problem('KAFKA_SASL_MECHANISM without TLS sends credentials in the clear: set KAFKA_TLS=true (SASL_SSL), or KAFKA_SASL_ALLOW_PLAINTEXT=true for a network you trust');
    sasl = { mechanism, username: username ?? '', password: password ?? '' };
  } else if (username || password) {
    env.problem('KAFKA_SASL_USERNAME/PASSWORD are set but KAFKA_SASL_MECHANISM is not (plain, scram-sha-256 or scram-sha-512)');
  }
  return {
    brokers,
    clientId: env.string('KAFKA_CLIENT_ID', clientId),
    tls: tlsOn ? { ...(caFile ? { caFile } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}), ...(serverName ? { serverName } : {}) } : undefined,
    sasl,
    replicationFactor: env.int('KAFKA_REPLICATION_FACTOR', 0, { min: 0, max: 7 }),
    topics: {
      // 12 partitions: up to 12 dispatchers share the work. 7 days of retention.
      events: {
        name: env.string('KAFKA_TOPIC_EVENTS', 'webhooks.events.v1'),
        partitions: env.int('KAFKA_EVENTS_PARTITIONS', 12, { min: 1, max: 1000 }),
        configs: { 'retention.ms': String(7 * 24 * 3600 * 1000) },
      },
      ingest: {
        name: env.string('KAFKA_TOPIC_INGEST', 'webhooks.ingest.v1'),
        partitions: env.int('KAFKA_INGEST_PARTITIONS', 12, { min: 1, max: 1000 }),
        configs: { 'retention.ms': String(7 * 24 * 3600 * 1000) },
      },
      ingestDlq: {
        name: env.string('KAFKA_TOPIC_INGEST_DLQ', 'webhooks.ingest.dlq.v1'),
        partitions: env.int('KAFKA_INGEST_DLQ_PARTITIONS', 3, { min: 1, max: 1000 }),
        configs: { 'retention.ms': String(30 * 24 * 3600 * 1000) },
      },
      // Compacted: the latest change per key is all a fresh dispatcher needs.
      endpointChanges: {
        name: env.string('KAFKA_TOPIC_ENDPOINT_CHANGES', 'webhooks.endpoint-changes.v1'),
        partitions: env.int('KAFKA_ENDPOINT_CHANGES_PARTITIONS', 3, { min: 1, max: 1000 }),
        configs: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '60000' },
      },
    },
  };
}

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** kafkajs `ssl`: the files' contents (read now, so a bad path fails the start), or plain TLS with the system trust store. */
function tlsOptions(t: NonNullable<KafkaSettings['tls']>): ConnectionOptions | true {
  if (!t.caFile && !t.certFile && !t.serverName) return true;
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new StartupError(`Kafka TLS ${what} ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  return {
    ...(t.caFile ? { ca: [read('CA bundle', t.caFile)] } : {}),
    ...(t.certFile && t.keyFile ? { cert: read('certificate', t.certFile), key: read('key', t.keyFile) } : {}),
    ...(t.serverName ? { servername: t.serverName } : {}),
  };
}

let requestQueueFixed: boolean | undefined;

export function createKafka(settings: KafkaSettings, log: Logger): Kafka {
  const kafkaLog = log.child({ component: 'kafkajs' });
  if (requestQueueFixed === undefined && !(requestQueueFixed = fixRequestQueue() !== undefined)) {
    kafkaLog.warn('kafkajs has no RequestQueue where 2.2.4 has it: its 1 ms idle timer is not fixed (request-queue-fix.ts)');
  }
  return new Kafka({
    clientId: settings.clientId,
    brokers: settings.brokers,
    ...(settings.tls ? { ssl: tlsOptions(settings.tls) } : {}),
    ...(settings.sasl ? { sasl: { mechanism: settings.sasl.mechanism, username: settings.sasl.username, password: settings.sasl.password } as SASLOptions } : {}),
    // kafkajs INFO is chatty (every join/leave); WARN and above reach our logs.
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        kafkaLog[LEVELS[level] ?? 'info']({ kafka: { ...rest, timestamp: undefined } }, message);
      },
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5_000 },
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
  });
}

/** The idempotent, acks=all producer every service uses. */
export function createProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 3_000 },
  });
}

/**
 * Creates the missing topics; existing ones are left as they are. Safe to run concurrently (two
 * services starting together). Resolves once every partition of every topic has a leader: on a
 * freshly started KRaft broker, metadata can briefly answer UNKNOWN_TOPIC_OR_PARTITION for a
 * topic the controller already created, so readiness is polled rather than trusted to
 * kafkajs' waitForLeaders (which gives up on that error).
 */
export async function ensureTopics(admin: Admin, specs: TopicSpec[], replicationFactor: number, timeoutMs = 60_000): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((t) => !existing.has(t.name));
  if (missing.length > 0) {
    let rf = replicationFactor;
    if (rf === 0) {
      const cluster = await admin.describeCluster();
      rf = Math.min(3, cluster.brokers.length);
    }
    const topics: ITopicConfig[] = missing.map((t) => ({
      topic: t.name,
      numPartitions: t.partitions,
      replicationFactor: rf,
      configEntries: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value })),
    }));
    try {
      await admin.createTopics({ topics, waitForLeaders: false });
    } catch (err) {
      // TOPIC_ALREADY_EXISTS from a concurrent creator is fine; anything else shows up below.
      if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') {
        const now = new Set(await admin.listTopics().catch(() => [] as string[]));
        if (!missing.every((t) => now.has(t.name))) throw err;
      }
    }
  }
  const names = specs.map((t) => t.name);
  const deadline = Date.now() + timeoutMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: names });
      const ready = names.every((n) => {
        const t = topics.find((x) => x.name === n);
        return t !== undefined && t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0);
      });
      if (ready) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`topics ${names.join(', ')} have no leaders after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * ensureTopics through a short-lived admin client of `kafka`. Every service's first contact with
 * the brokers: refused credentials or a failed TLS handshake end the start here with one line
 * saying which setting to check (StartupError: runMain prints no stack).
 */
export async function ensureTopicsOn(kafka: Kafka, specs: TopicSpec[], replicationFactor: number): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await ensureTopics(admin, specs, replicationFactor);
  } catch (err) {
    throw explainAccessError(err) ?? err;
  } finally {
    await admin.disconnect();
  }
}

/** A StartupError for failures that mean "these brokers do not accept us", else undefined. */
export function explainAccessError(err: unknown): StartupError | undefined {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 6; e = (e as { originalError?: unknown; cause?: unknown }).originalError ?? e.cause, i++) {
    if (e.name === 'KafkaJSSASLAuthenticationError') {
      return new StartupError(`Kafka refused the SASL credentials (${e.message.replace(/\s+/g, ' ').slice(0, 200)}): check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE)`, { cause: err });
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME/.test(code)) {
      return new StartupError(`Kafka TLS handshake failed (${code}): check KAFKA_TLS_CA_FILE and KAFKA_TLS_SERVER_NAME against the brokers' certificate`, { cause: err });
    }
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && type.endsWith('_AUTHORIZATION_FAILED')) {
      return new StartupError(`Kafka refused this user (${type}): grant its ACLs (describe the cluster; create, describe, read and write the Hookline topics; its consumer groups)`, { cause: err });
    }
  }
  return undefined;
}

export function allTopics(settings: KafkaSettings): TopicSpec[] {
  return Object.values(settings.topics);
}

/** What a consumer's readiness needs (kafkajs Consumer). */
type ConsumerEvents = Pick<Consumer, 'on' | 'events'>;

export interface ConsumerWatch {
  /** Called when the consumer is down for good; the caller ends the process (crash-only). */
  onFatal?: (error: Error) => void;
  /**
   * Starts the consumer again (its `run(...)` with the same handlers). Given, a consumer that lost
   * its group coordinator is started again in-process instead of being fatal (see below).
   */
  rerun?: () => Promise<void>;
  /** How long a streak of lost-coordinator crashes is re-run before it is fatal. Default 5 min. */
  rerunForMs?: number;
  log?: Pick<Logger, 'warn'>;
}

/**
 * NOT_SERVING while a consumer is out of its group: it crashed (kafkajs restarts it after lost
 * brokers or coordinator errors) or disconnected; SERVING again once it has rejoined and fetches.
 *
 * kafkajs restarts a consumer only after retriable errors, and "Failed to find group coordinator"
 * is not one (kafkajs issue 1630): it is what a consumer that rejoins while its only broker is
 * still restarting, or whose coordinator is still loading, gets. With `rerun`, such a consumer is
 * started again in-process, 1 s then up to 10 s apart, for `rerunForMs`; any other crash
 * kafkajs does not restart is fatal at once. Close the watch before disconnecting the consumer.
 */
export function watchConsumer(consumer: ConsumerEvents, readiness: Readiness, dep: string, watch: ConsumerWatch = {}): ConsumerWatchHandle {
  let streakSince: number | undefined;
  let reruns = 0;
  let timer: NodeJS.Timeout | undefined;
  let rerunning: Promise<void> | undefined;
  let closed = false;
  consumer.on(consumer.events.CRASH, (e) => {
    const error = e.payload.error;
    readiness.markDown(dep, `consumer crashed: ${error.name}${e.payload.restart ? '; restarting' : ''}`);
    if (e.payload.restart || closed) return;
    const now = Date.now();
    streakSince ??= now;
    if (watch.rerun && isCoordinatorLost(error) && now - streakSince < (watch.rerunForMs ?? 5 * 60_000)) {
      const delay = Math.min(1_000 * 2 ** reruns++, 10_000);
      watch.log?.warn({ dep, delayMs: delay, reruns }, 'consumer lost its group coordinator; starting it again');
      timer = setTimeout(() => {
        timer = undefined;
        if (closed) return;
        rerunning = watch.rerun!()
          .catch((err: unknown) => watch.onFatal?.(err instanceof Error ? err : new Error(String(err))))
          .finally(() => (rerunning = undefined));
      }, delay);
      return;
    }
    // Any other error kafkajs will not restart leaves the consumer down for good while the process
    // looks alive. Crash-only: the caller ends the process so the orchestrator starts a fresh one
    // (its partitions move to the other replicas meanwhile).
    watch.onFatal?.(error);
  });
  consumer.on(consumer.events.DISCONNECT, () => readiness.markDown(dep, 'consumer disconnected'));
  consumer.on(consumer.events.GROUP_JOIN, () => {
    streakSince = undefined;
    reruns = 0;
    readiness.markUp(dep);
  });
  consumer.on(consumer.events.FETCH_START, () => readiness.markUp(dep));
  return {
    close: async () => {
      closed = true;
      clearTimeout(timer);
      // A re-run still joining would carry on after a disconnect (kafkajs stops only a running
      // consumer): let it end first, within bounds, so the disconnect that follows stops it.
      if (rerunning) await Promise.race([rerunning, new Promise((r) => setTimeout(r, 5_000).unref())]);
    },
  };
}

export interface ConsumerWatchHandle {
  /** No more re-runs; waits (at most 5 s) for one under way. Call before disconnecting. */
  close(): Promise<void>;
}

/** kafkajs' KafkaJSGroupCoordinatorNotFound, also as the cause of a wrapping error. */
export function isCoordinatorLost(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    if (e.name === 'KafkaJSGroupCoordinatorNotFound' || /failed to find group coordinator/i.test(e.message)) return true;
  }
  return false;
}

/**
 * True for errors that mean "this member lost its partitions" (a rebalance happened under it):
 * stop the batch without committing; the records go to the partition's new owner.
 */
export function isRebalanceError(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 5; e = (e as { originalError?: unknown; cause?: unknown }).originalError ?? e.cause, i++) {
    const type = (e as { type?: unknown }).type;
    if (type === 'UNKNOWN_MEMBER_ID' || type === 'REBALANCE_IN_PROGRESS' || type === 'ILLEGAL_GENERATION' || type === 'FENCED_INSTANCE_ID') return true;
    if (/not aware of this member|rebalanc|generation/i.test(e.message)) return true;
  }
  return false;
}

/** A cheap broker round trip (cluster metadata) for Readiness probes after a failed produce. */
export function brokerProbe(kafka: Kafka): () => Promise<void> {
  return async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.describeCluster();
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };
}
export { CoalescingSender } from './coalescing-sender';
export { fixRequestQueue } from './request-queue-fix';

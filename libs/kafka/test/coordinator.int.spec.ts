// A consumer that cannot reach its group coordinator, against the real broker. kafkajs does not
// restart a consumer after "Failed to find group coordinator" (not retriable; kafkajs issue 1630):
// a dispatcher whose consumer rejoined while the broker was still restarting stopped consuming and
// exited (the fault suite's `combined` scenario, session 6). The connection below makes that
// happen on purpose: while `refuseCoordinator` is set, a FindCoordinator request (Kafka API key
// 10) closes the connection instead of being sent, as a broker going down at that moment does.
import net from 'node:net';
import { Kafka, logLevel, type ConsumerRunConfig, type ISocketFactory } from 'kafkajs';
import { createLogger } from '@hookline/service-kit';
import { deleteTopics, eventually, infraFromEnv, uniquePrefix } from '@hookline/testing';
import { watchConsumer } from '../src';

jest.setTimeout(60_000);

const FIND_COORDINATOR = 10;

class CoordinatorGate {
  refuseCoordinator = true;
  refused = 0;

  readonly socketFactory: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = net.connect({ host, port }, onConnect);
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    // A request is [size int32][api key int16]…; kafkajs writes each one whole.
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (this.refuseCoordinator && Buffer.isBuffer(chunk) && chunk.length >= 6 && chunk.readInt16BE(4) === FIND_COORDINATOR) {
        this.refused++;
        socket.destroy(Object.assign(new Error('connection reset (test: FindCoordinator refused)'), { code: 'ECONNRESET' }));
        return false;
      }
      return write(chunk, ...rest);
    }) as typeof socket.write;
    return socket;
  };
}

describe('a consumer that lost its group coordinator', () => {
  const infra = infraFromEnv();
  const prefix = uniquePrefix('coord');
  const topic = `${prefix}.records`;
  const brokers = infra.kafkaBrokers.split(',');
  const plain = new Kafka({ clientId: 'coordinator-test', brokers, logLevel: logLevel.NOTHING });
  const producer = plain.producer();

  beforeAll(async () => {
    const admin = plain.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    await producer.connect();
  });

  afterAll(async () => {
    await producer.disconnect();
    await deleteTopics(infra.kafkaBrokers, prefix);
  });

  it('is started again in-process and consumes what was produced meanwhile', async () => {
    const gate = new CoordinatorGate();
    const gated = new Kafka({ clientId: 'coordinator-test-gated', brokers, logLevel: logLevel.NOTHING, socketFactory: gate.socketFactory, retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 } });
    const consumer = gated.consumer({ groupId: `${prefix}-group`, sessionTimeout: 10_000, heartbeatInterval: 1_000, maxWaitTimeInMs: 200 });
    const seen: string[] = [];
    const run: ConsumerRunConfig = { eachMessage: async ({ message }) => void seen.push(String(message.value)) };
    const crashes: string[] = [];
    consumer.on(consumer.events.CRASH, (e) => crashes.push(`${e.payload.error.name}${e.payload.restart ? ' (kafkajs restarts it)' : ''}`));
    const fatal: Error[] = [];
    const readiness = { markDown: () => undefined, markUp: () => undefined } as never;
    const watch = watchConsumer(consumer, readiness, 'test consumer', { onFatal: (e) => fatal.push(e), rerun: () => consumer.run(run), log: createLogger('test', 'silent') });
    try {
      await producer.send({ topic, messages: [{ value: 'before' }] });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      // Its join cannot find the coordinator: kafkajs gives the consumer up.
      await consumer.run(run);
      await eventually(() => (crashes.includes('KafkaJSGroupCoordinatorNotFound') ? true : undefined), 20_000, `the join to fail on the coordinator (crashes: ${crashes.join(', ')})`);
      expect(gate.refused).toBeGreaterThan(0);
      await producer.send({ topic, messages: [{ value: 'meanwhile' }] });
      // The coordinator answers again: the watch has run the consumer again.
      gate.refuseCoordinator = false;
      await eventually(() => (seen.includes('before') && seen.includes('meanwhile') ? true : undefined), 30_000, `both records to be consumed (crashes: ${crashes.join(', ')})`);
      expect(fatal).toEqual([]);
    } finally {
      watch.close();
      await consumer.disconnect().catch(() => undefined);
    }
  });
});

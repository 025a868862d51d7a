// What a test run or a bench leaves behind on the shared local broker and database: its
// databases and its prefixed topics. Best effort, after everything that used them has stopped
// (a service still running would bring a dropped database back). Without it the local FerretDB
// data folder grew to 3.6 GB of old test and bench databases (session 5), and every bench run
// leaves ~700 MB of ingest-phase records on its events topic.
import { Kafka, logLevel } from 'kafkajs';
import mongoose from 'mongoose';

/** Drops these databases; a database that is not there, or a server that does not answer, is passed over. */
export async function dropDatabases(mongoUri: string, names: string[]): Promise<void> {
  const conn = await mongoose.createConnection(mongoUri, { serverSelectionTimeoutMS: 5_000 }).asPromise();
  try {
    for (const name of names) await conn.useDb(name).dropDatabase().catch(() => undefined);
  } finally {
    await conn.close();
  }
}

/** Deletes every topic named `<prefix>.…`; a leftover test topic is harmless, so failures are passed over. */
export async function deleteTopics(kafkaBrokers: string, prefix: string): Promise<void> {
  const admin = new Kafka({ clientId: 'hookline-test-cleanup', brokers: kafkaBrokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 3, initialRetryTime: 100 } }).admin();
  try {
    await admin.connect();
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine });
  } catch {
    // best effort
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

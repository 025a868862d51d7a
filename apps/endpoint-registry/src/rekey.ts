// Re-encrypts every stored endpoint secret whose key id is not SECRET_ENCRYPTION_ACTIVE_KEY, with
// the same configuration the service reads (docs/registry.md, "Rotating the encryption key"):
//
//   SECRET_ENCRYPTION_KEYS=k1:<old>,k2:<new> SECRET_ENCRYPTION_ACTIVE_KEY=k2 npm run rekey
//
// Safe to run while the registry serves and safe to re-run: each endpoint is rewritten under its
// writer lock (endpoint-locks.ts), secrets already under the active key are left alone, and a
// second run finds nothing to do. Plaintext secrets never leave this process and are never
// printed; the output is one JSON line of counts. Exit status 1 when any secret could not be
// decrypted (wrong or missing key, corrupted document): those endpoints keep their old ciphertext.
import mongoose from 'mongoose';
import { ConfigError, createLogger, type Logger } from '@hookline/service-kit';
import { loadConfig, type RegistryConfig } from './config';
import { secretAad, SecretBox } from './secrets/secret-box';
import { EndpointLocks } from './store/endpoint-locks';
import { registryModels, type EndpointDoc, type RegistryModels, type StoredSecret } from './store/models';

export interface RekeyCounts {
  /** Endpoints looked at. */
  endpoints: number;
  /** Endpoints rewritten in this run. */
  endpointsRekeyed: number;
  /** Secrets re-encrypted under the active key in this run. */
  secretsRekeyed: number;
  /** Secrets already under the active key (left as they are). */
  secretsCurrent: number;
  /** Endpoints left unchanged because one of their secrets failed to decrypt. */
  endpointsFailed: number;
  activeKeyId: string;
}

/** Scan batch: endpoints are read by _id in pages of this many (only ids and key ids). */
const BATCH = 500;

export async function rekeyEndpoints(models: RegistryModels, box: SecretBox, locks: EndpointLocks, log: Logger): Promise<RekeyCounts> {
  const counts: RekeyCounts = { endpoints: 0, endpointsRekeyed: 0, secretsRekeyed: 0, secretsCurrent: 0, endpointsFailed: 0, activeKeyId: box.activeKeyId };
  let after: string | undefined;
  for (;;) {
    // Key ids only, in _id order (no $elemMatch: works the same on MongoDB and FerretDB).
    const page = await models.endpoints
      .find(after === undefined ? {} : { _id: { $gt: after } }, { _id: 1, workspaceId: 1, 'secrets.kid': 1 })
      .sort({ _id: 1 })
      .limit(BATCH)
      .lean<Pick<EndpointDoc, '_id' | 'workspaceId' | 'secrets'>[]>();
    if (page.length === 0) break;
    after = page[page.length - 1]!._id;
    for (const head of page) {
      counts.endpoints++;
      const stale = head.secrets.filter((s) => box.needsRekey(s)).length;
      counts.secretsCurrent += head.secrets.length - stale;
      if (stale === 0) continue;
      try {
        const n = await rekeyOne(models, box, locks, head._id, head.workspaceId);
        if (n > 0) counts.endpointsRekeyed++;
        counts.secretsRekeyed += n;
      } catch (err) {
        counts.endpointsFailed++;
        // The error names the key id or says the tag did not match; it never carries secret bytes.
        log.error({ endpointId: head._id, workspaceId: head.workspaceId, err }, 'could not re-encrypt this endpoint; it keeps its current ciphertext');
      }
    }
  }
  return counts;
}

/** Re-encrypts one endpoint's stale secrets under its lock; returns how many were re-encrypted. */
async function rekeyOne(models: RegistryModels, box: SecretBox, locks: EndpointLocks, endpointId: string, workspaceId: string): Promise<number> {
  return locks.withLock(endpointId, async () => {
    const doc = await models.endpoints.findOne({ _id: endpointId, workspaceId }).lean<EndpointDoc>();
    if (!doc) return 0; // deleted meanwhile
    const aad = secretAad(doc.workspaceId, doc._id);
    let n = 0;
    const secrets: StoredSecret[] = doc.secrets.map((s) => {
      if (!box.needsRekey(s)) return s;
      n++;
      return { ...box.reseal(s, aad), expiresAt: s.expiresAt };
    });
    if (n === 0) return 0;
    // Same version: the endpoint did not change for its owner or for dispatchers (same plaintexts),
    // and an idempotent CreateEndpoint retry still answers. The lock keeps other writers out.
    const res = await models.endpoints.updateOne({ _id: doc._id, workspaceId: doc.workspaceId, version: doc.version }, { $set: { secrets } });
    if (res.matchedCount === 0) throw new Error(`endpoint ${doc._id} changed while re-encrypting; run rekey again`);
    return n;
  });
}

/** Connects with the service's configuration, re-encrypts, disconnects. */
export async function runRekey(config: RegistryConfig, log: Logger): Promise<RekeyCounts> {
  const box = new SecretBox(config.secretKeys, config.activeSecretKeyId);
  const db = mongoose.createConnection(config.mongoUri, { dbName: config.mongoDatabase, serverSelectionTimeoutMS: 5_000 });
  try {
    await db.asPromise();
    const models = registryModels(db);
    await models.locks.createIndexes();
    log.info({ db: config.mongoDatabase, activeKeyId: box.activeKeyId, keyIds: [...config.secretKeys.keys()] }, 'rekey: re-encrypting endpoint secrets');
    return await rekeyEndpoints(models, box, new EndpointLocks(models.locks), log);
  } finally {
    await db.close();
  }
}

async function main(): Promise<number> {
  let config: RegistryConfig;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    process.stderr.write(`rekey: ${err instanceof ConfigError ? err.message : String(err)}\n`);
    return 2;
  }
  // Logs go to stderr; stdout carries only the counts.
  const log = createLogger('endpoint-registry-rekey', config.logLevel === 'silent' ? 'silent' : 'info', process.stderr);
  const counts = await runRekey(config, log);
  process.stdout.write(`${JSON.stringify(counts)}\n`);
  return counts.endpointsFailed > 0 ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`rekey: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}

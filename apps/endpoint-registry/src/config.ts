// The only reader of process.env in endpoint-registry. Every key, its default and meaning is in
// the README's configuration table.
import { EnvReader, readServiceSettings, type ServiceSettings } from '@hookline/service-kit';
import { readTelemetrySettings } from '@hookline/telemetry';
import { readKafkaSettings, type KafkaSettings } from '@hookline/kafka';
import { AllowList } from '@hookline/url-policy';

export interface RegistryConfig extends ServiceSettings {
  /** Prometheus scrape port (GET /metrics); undefined = no endpoint. 0 picks a free port. */
  metricsPort: number | undefined;
  metricsHost: string;
  kafka: KafkaSettings;
  /** AES-256-GCM keys by id; the active one encrypts, all of them decrypt. */
  secretKeys: Map<string, Buffer>;
  activeSecretKeyId: string;
  /** CIDRs and host names allowed although not public. Empty in production. */
  targetAllowList: string[];
}

export function loadConfig(env: Record<string, string | undefined>): RegistryConfig {
  const r = new EnvReader(env);
  // OTEL_* and METRICS_* (also read by instrument.ts, first thing): listed with every other problem.
  const { settings: telemetry, problems: telemetryProblems } = readTelemetrySettings(env, 'endpoint-registry');
  for (const p of telemetryProblems) r.problem(p);
  const keysRaw = r.string('SECRET_ENCRYPTION_KEYS');
  const secretKeys = new Map<string, Buffer>();
  for (const entry of keysRaw.split(',').filter(Boolean)) {
    const [id, b64] = entry.split(':');
    const key = Buffer.from(b64 ?? '', 'base64');
    const kid = (id ?? '').trim();
    // Never echo the key material: name the entry by its id only.
    if (!kid || key.length !== 32) r.problem(`SECRET_ENCRYPTION_KEYS entry "${kid}" must be <key-id>:<base64 of 32 bytes>`);
    else if (secretKeys.has(kid)) r.problem(`SECRET_ENCRYPTION_KEYS lists key id "${kid}" twice`);
    else secretKeys.set(kid, key);
  }
  const activeSecretKeyId = r.string('SECRET_ENCRYPTION_ACTIVE_KEY', [...secretKeys.keys()][0] ?? '');
  if (secretKeys.size > 0 && !secretKeys.has(activeSecretKeyId)) r.problem(`SECRET_ENCRYPTION_ACTIVE_KEY=${activeSecretKeyId} is not one of the key ids in SECRET_ENCRYPTION_KEYS`);
  const targetAllowList = r.list('TARGET_ALLOWLIST');
  for (const p of AllowList.validate(targetAllowList)) r.problem(`TARGET_ALLOWLIST: ${p}`);
  const config: RegistryConfig = {
    ...readServiceSettings(r, { grpcPort: 50051, mongoDatabase: 'hookline_registry' }),
    metricsPort: telemetry.metricsPort,
    metricsHost: telemetry.metricsHost,
    kafka: readKafkaSettings(r, 'endpoint-registry'),
    secretKeys,
    activeSecretKeyId,
    targetAllowList,
  };
  r.done();
  return config;
}

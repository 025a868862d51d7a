// Test harness for endpoint-registry integration specs: the registry in-process on the real broker
// and database, isolated by a prefix (own database, own topics), with its logs captured in memory
// and a raw connection to its database for assertions on stored documents. Not a spec.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { Kafka, logLevel } from 'kafkajs';
import mongoose from 'mongoose';
import { endpointsV1 } from '@hookline/proto';
import { createLogger } from '@hookline/service-kit';
import { deleteTopics, infraFromEnv, isolatedServiceEnv, rpc, uniquePrefix, type Infra } from '@hookline/testing';
import { createApp, type RegistryApp } from '../src/app';
import { loadConfig, type RegistryConfig } from '../src/config';

export const newKey = (): string => randomBytes(32).toString('base64');

/** Set HOOKLINE_TEST_LOG_LEVEL=info to also print the registry's logs while debugging. */
const ECHO_LOGS = process.env.HOOKLINE_TEST_LOG_LEVEL !== undefined;

export interface RegistryHarness {
  infra: Infra;
  prefix: string;
  database: string;
  env: Record<string, string>;
  config: RegistryConfig;
  app: RegistryApp;
  client: endpointsV1.EndpointRegistryServiceClient;
  /** Every log line the registry wrote (JSON text), at level trace. */
  logs(): string;
  /** A raw connection to the registry's database (no mongoose models: the stored bytes as they are). */
  db: mongoose.Connection;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  /** Extra or overriding environment for loadConfig. */
  env?: Record<string, string>;
  label?: string;
  /** Leave the database in place on stop (a second registry sharing the first one's database). */
  keepDatabase?: boolean;
}

export function registryEnv(infra: Infra, prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...isolatedServiceEnv(infra, prefix),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    LOG_LEVEL: 'silent',
    MONGODB_DATABASE: `${prefix}_registry`,
    SECRET_ENCRYPTION_KEYS: `k1:${newKey()}`,
    // The tests register public-looking names (example.com hosts); nothing is ever connected to.
    ...extra,
  };
}

export async function startRegistry(options: HarnessOptions = {}): Promise<RegistryHarness> {
  const infra = infraFromEnv();
  const prefix = uniquePrefix(options.label ?? 'reg');
  const env = registryEnv(infra, prefix, options.env);
  const config = loadConfig(env);
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      if (ECHO_LOGS) process.stderr.write(chunk);
      done();
    },
  });
  const app = createApp(config, createLogger('endpoint-registry', 'trace', sink));
  try {
    await app.start();
  } catch (err) {
    await app.stop();
    throw err;
  }
  const db = await mongoose.createConnection(infra.mongoUri, { dbName: config.mongoDatabase, serverSelectionTimeoutMS: 5_000 }).asPromise();
  const client = new endpointsV1.EndpointRegistryServiceClient(`127.0.0.1:${app.port}`, grpc.credentials.createInsecure());
  return {
    infra,
    prefix,
    database: config.mongoDatabase,
    env,
    config,
    app,
    client,
    db,
    logs: () => chunks.join(''),
    async stop() {
      client.close();
      await app.stop();
      if (!options.keepDatabase) await db.dropDatabase().catch(() => undefined);
      await db.close();
      await deleteTopics(infra.kafkaBrokers, prefix);
    },
  };
}

export function testKafka(infra: Infra): Kafka {
  return new Kafka({ clientId: 'endpoint-registry-test', brokers: infra.kafkaBrokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 3, initialRetryTime: 100 } });
}


/** Typed promise wrappers for every RPC, each with a deadline (libs/testing rpc()). */
export function calls(client: endpointsV1.EndpointRegistryServiceClient) {
  return {
    createEndpoint: (r: Partial<endpointsV1.CreateEndpointRequest>) =>
      rpc(client.createEndpoint.bind(client), { ...endpointsV1.CreateEndpointRequest.create(), ...r }),
    getEndpoint: (r: Partial<endpointsV1.GetEndpointRequest>) => rpc(client.getEndpoint.bind(client), { ...endpointsV1.GetEndpointRequest.create(), ...r }),
    listEndpoints: (r: Partial<endpointsV1.ListEndpointsRequest>) => rpc(client.listEndpoints.bind(client), { ...endpointsV1.ListEndpointsRequest.create(), ...r }),
    updateEndpoint: (r: Partial<endpointsV1.UpdateEndpointRequest>) => rpc(client.updateEndpoint.bind(client), { ...endpointsV1.UpdateEndpointRequest.create(), ...r }),
    deleteEndpoint: (r: Partial<endpointsV1.DeleteEndpointRequest>) => rpc(client.deleteEndpoint.bind(client), { ...endpointsV1.DeleteEndpointRequest.create(), ...r }),
    updateEndpointSubscription: (r: Partial<endpointsV1.UpdateEndpointSubscriptionRequest>) =>
      rpc(client.updateEndpointSubscription.bind(client), { ...endpointsV1.UpdateEndpointSubscriptionRequest.create(), ...r }),
    rotateEndpointSecret: (r: Partial<endpointsV1.RotateEndpointSecretRequest>) =>
      rpc(client.rotateEndpointSecret.bind(client), { ...endpointsV1.RotateEndpointSecretRequest.create(), ...r }),
    disableEndpoint: (r: Partial<endpointsV1.DisableEndpointRequest>) => rpc(client.disableEndpoint.bind(client), { ...endpointsV1.DisableEndpointRequest.create(), ...r }),
    createEventType: (r: Partial<endpointsV1.CreateEventTypeRequest>) => rpc(client.createEventType.bind(client), { ...endpointsV1.CreateEventTypeRequest.create(), ...r }),
    getEventType: (r: Partial<endpointsV1.GetEventTypeRequest>) => rpc(client.getEventType.bind(client), { ...endpointsV1.GetEventTypeRequest.create(), ...r }),
    listEventTypes: (r: Partial<endpointsV1.ListEventTypesRequest>) => rpc(client.listEventTypes.bind(client), { ...endpointsV1.ListEventTypesRequest.create(), ...r }),
    updateEventType: (r: Partial<endpointsV1.UpdateEventTypeRequest>) => rpc(client.updateEventType.bind(client), { ...endpointsV1.UpdateEventTypeRequest.create(), ...r }),
    deprecateEventType: (r: Partial<endpointsV1.DeprecateEventTypeRequest>) =>
      rpc(client.deprecateEventType.bind(client), { ...endpointsV1.DeprecateEventTypeRequest.create(), ...r }),
    undeprecateEventType: (r: Partial<endpointsV1.UndeprecateEventTypeRequest>) =>
      rpc(client.undeprecateEventType.bind(client), { ...endpointsV1.UndeprecateEventTypeRequest.create(), ...r }),
    resolveSubscribers: (r: Partial<endpointsV1.ResolveSubscribersRequest>) =>
      rpc(client.resolveSubscribers.bind(client), { ...endpointsV1.ResolveSubscribersRequest.create(), ...r }),
  };
}
export type Calls = ReturnType<typeof calls>;

/** The gRPC error of a call that must fail. */
export async function rpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

export interface DecodedStatus {
  code: number;
  message: string;
  typeUrls: string[];
  violations: { field: string; description: string }[];
}

/** google.rpc.Status (with google.rpc.BadRequest details) from the grpc-status-details-bin trailer. */
export function statusDetails(err: grpc.ServiceError): DecodedStatus | undefined {
  const bin = err.metadata?.get('grpc-status-details-bin')[0];
  if (!bin) return undefined;
  const out: DecodedStatus = { code: -1, message: '', typeUrls: [], violations: [] };
  const st = new BinaryReader(bin as Buffer);
  while (st.pos < st.len) {
    const [no, wt] = st.tag();
    if (no === 1) out.code = st.int32();
    else if (no === 2) out.message = st.string();
    else if (no === 3) {
      const any = new BinaryReader(st.bytes());
      let typeUrl = '';
      let value: Uint8Array = new Uint8Array();
      while (any.pos < any.len) {
        const [ano, awt] = any.tag();
        if (ano === 1) typeUrl = any.string();
        else if (ano === 2) value = any.bytes();
        else any.skip(awt);
      }
      out.typeUrls.push(typeUrl);
      if (typeUrl !== 'type.googleapis.com/google.rpc.BadRequest') continue;
      const br = new BinaryReader(value);
      while (br.pos < br.len) {
        const [bno, bwt] = br.tag();
        if (bno !== 1) {
          br.skip(bwt);
          continue;
        }
        const fv = new BinaryReader(br.bytes());
        const v = { field: '', description: '' };
        while (fv.pos < fv.len) {
          const [fno, fwt] = fv.tag();
          if (fno === 1) v.field = fv.string();
          else if (fno === 2) v.description = fv.string();
          else fv.skip(fwt);
        }
        out.violations.push(v);
      }
    } else st.skip(wt as WireType);
  }
  return out;
}

/**
 * Asserts INVALID_ARGUMENT naming `field` in the message and in the BadRequest details, and returns
 * the violation description for further checks.
 */
export async function expectInvalid(p: Promise<unknown>, field: string, why?: RegExp): Promise<string> {
  const err = await rpcError(p);
  expect({ code: grpc.status[err.code], details: err.details }).toEqual({ code: 'INVALID_ARGUMENT', details: expect.stringContaining(`${field}: `) });
  const st = statusDetails(err);
  expect(st).toBeDefined();
  expect(st!.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(st!.message).toBe(err.details);
  expect(st!.typeUrls).toEqual(['type.googleapis.com/google.rpc.BadRequest']);
  const v = st!.violations.find((x) => x.field === field);
  expect(v).toBeDefined();
  if (why) expect(v!.description).toMatch(why);
  return v!.description;
}

/** Asserts the exact status code (and that no internal text leaked). */
export async function expectCode(p: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<grpc.ServiceError> {
  const err = await rpcError(p);
  expect(grpc.status[err.code]).toBe(grpc.status[code]);
  if (message) expect(err.details).toMatch(message);
  return err;
}

export const allEvents = (): endpointsV1.Subscription => ({ selection: { $case: 'allEvents', value: true } });
export const types = (...names: string[]): endpointsV1.Subscription => ({ selection: { $case: 'eventTypes', value: { names } } });

export const OBJECT_SCHEMA = JSON.stringify({
  type: 'object',
  required: ['id', 'amount'],
  properties: { id: { type: 'string' }, amount: { type: 'integer', minimum: 0 } },
  additionalProperties: false,
});
export const OBJECT_EXAMPLE = JSON.stringify({ id: 'in_1', amount: 100 });

// The one place where errors become gRPC statuses. Handlers throw these; anything else is an
// internal fault: logged with its cause, answered as INTERNAL with a reference id only, so no
// internal text (stack, driver message, URI) ever reaches a caller.
import { Metadata, status } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';

export interface FieldViolation {
  /** Request field path in proto names, e.g. `url` or `subscription.event_types.names[2]`. */
  field: string;
  /** What is wrong and what to do. */
  description: string;
}

export class ServiceError extends Error {
  constructor(
    readonly code: status,
    message: string,
    readonly violations: readonly FieldViolation[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ServiceError';
  }
}

/**
 * A start that cannot succeed for a reason the operator fixes (credentials refused, a file that
 * cannot be read): runMain prints its message as one line, without a stack.
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

export const invalidArgument = (violations: FieldViolation[]): ServiceError =>
  new ServiceError(status.INVALID_ARGUMENT, violations.map((v) => `${v.field}: ${v.description}`).join('; '), violations);
export const invalidField = (field: string, description: string): ServiceError => invalidArgument([{ field, description }]);
export const notFound = (message: string): ServiceError => new ServiceError(status.NOT_FOUND, message);
export const alreadyExists = (message: string): ServiceError => new ServiceError(status.ALREADY_EXISTS, message);
export const failedPrecondition = (message: string): ServiceError => new ServiceError(status.FAILED_PRECONDITION, message);
export const unauthenticated = (message: string): ServiceError => new ServiceError(status.UNAUTHENTICATED, message);
export const permissionDenied = (message: string): ServiceError => new ServiceError(status.PERMISSION_DENIED, message);
export const unavailable = (message: string, cause?: unknown): ServiceError => new ServiceError(status.UNAVAILABLE, message, [], { cause });

/** Collects every problem of a request so one answer lists them all. */
export class Violations {
  private readonly list: FieldViolation[] = [];
  add(field: string, description: string): this {
    this.list.push({ field, description });
    return this;
  }
  get any(): boolean {
    return this.list.length > 0;
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
}

// Driver errors that mean "a dependency is down or unreachable": the caller may retry.
const UNAVAILABLE_ERROR_NAMES = new Set([
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoServerSelectionError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  // The pool was cleared (the server went away or restarted): these extend MongoNetworkError but carry their own names.
  'MongoPoolClearedError',
  'PoolClearedOnNetworkError',
  'MongoPoolClosedError',
  'MongoWaitQueueTimeoutError',
  'MongoServerClosedError',
  'MongoOperationTimeoutError',
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNonRetriableError',
  'KafkaJSLockTimeout',
]);

export function isDependencyUnavailable(err: unknown): boolean {
  // A bulk write (insertMany) wraps the driver's error in `errorResponse`, others in `cause`.
  const inner = (e: Error): unknown => e.cause ?? (e as { errorResponse?: unknown }).errorResponse;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = inner(e), depth++) {
    if (UNAVAILABLE_ERROR_NAMES.has(e.name)) return true;
    if (e.name === 'MongooseServerSelectionError') return true;
    if ('code' in e && (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET')) return true;
    // Labels the driver puts on errors worth retrying once the server is back.
    const labels = (e as { errorLabels?: unknown }).errorLabels;
    if (Array.isArray(labels) && labels.some((l) => l === 'RetryableWriteError' || l === 'ResetPool' || l === 'TransientTransactionError')) return true;
    // FerretDB (SQLite backend) under write contention or while it starts.
    if (/SQLITE_BUSY|database is locked/i.test(e.message)) return true;
  }
  return false;
}

export interface GrpcStatusObject {
  code: status;
  details: string;
  metadata: Metadata;
}

/** Encodes google.rpc.Status{code, message, details:[Any(google.rpc.BadRequest)]} by hand. */
function statusDetails(code: status, message: string, violations: readonly FieldViolation[]): Buffer {
  const badRequest = new BinaryWriter();
  for (const v of violations) {
    const fv = new BinaryWriter().uint32(10).string(v.field).uint32(18).string(v.description).finish();
    badRequest.uint32(10).bytes(fv);
  }
  const any = new BinaryWriter()
    .uint32(10)
    .string('type.googleapis.com/google.rpc.BadRequest')
    .uint32(18)
    .bytes(badRequest.finish())
    .finish();
  return Buffer.from(new BinaryWriter().uint32(8).int32(code).uint32(18).string(message).uint32(26).bytes(any).finish());
}

/**
 * Maps any thrown value to the status a caller sees. `onInternal` receives faults that are not
 * ServiceErrors (for logging with the reference id).
 */
export function toGrpcStatus(err: unknown, onInternal: (ref: string, err: unknown) => void): GrpcStatusObject {
  const metadata = new Metadata();
  if (err instanceof ServiceError) {
    if (err.violations.length > 0) metadata.set('grpc-status-details-bin', statusDetails(err.code, err.message, err.violations));
    return { code: err.code, details: err.message, metadata };
  }
  if (isDependencyUnavailable(err)) {
    onInternal('dependency', err);
    return { code: status.UNAVAILABLE, details: 'a backing service (database or broker) is unavailable; retry with backoff', metadata };
  }
  const ref = Math.random().toString(36).slice(2, 10);
  onInternal(ref, err);
  return { code: status.INTERNAL, details: `internal error (reference ${ref}); the request may be retried`, metadata };
}

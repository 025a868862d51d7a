// Every failed call surfaces as one HooklineError: the gRPC code (number and name), the server's
// message, and the field violations the services put in the `grpc-status-details-bin` trailer
// (google.rpc.Status with google.rpc.BadRequest details, encoded by libs/service-kit/src/errors.ts).
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { BinaryReader } from '@bufbuild/protobuf/wire';

export { status };

export interface FieldViolation {
  /** Request field path in proto names, e.g. `url` or `subscription.event_types.names[2]`. */
  field: string;
  /** What is wrong and what to do. */
  description: string;
}

/** google.rpc.Status as decoded from the trailer. */
export interface DecodedStatus {
  code: number;
  message: string;
  /** type URLs of every detail, known or not. */
  detailTypes: string[];
  violations: FieldViolation[];
}

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const BAD_REQUEST_TYPE = 'type.googleapis.com/google.rpc.BadRequest';

/** `INVALID_ARGUMENT` for 3, `CODE_99` for a number grpc-js does not know. */
export function codeName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

export class HooklineError extends Error {
  /** The gRPC status code. */
  readonly code: status;
  /** The code's name, e.g. `NOT_FOUND`. */
  readonly codeName: string;
  /** The server's message without the `<code> <NAME>:` prefix grpc-js adds. */
  readonly details: string;
  /** Field violations for INVALID_ARGUMENT; empty otherwise. */
  readonly violations: readonly FieldViolation[];
  /** The full RPC path, e.g. `/webhooks.endpoints.v1.EndpointRegistryService/GetEndpoint`. */
  readonly method: string;
  /** How many attempts were made (1 when the call was not retried). */
  readonly attempts: number;

  constructor(init: { code: status; details: string; violations?: readonly FieldViolation[]; method: string; attempts?: number; cause?: unknown }) {
    const name = codeName(init.code);
    super(`${init.method.split('/').pop() ?? init.method}: ${name}: ${init.details}`, { cause: init.cause });
    this.name = 'HooklineError';
    this.code = init.code;
    this.codeName = name;
    this.details = init.details;
    this.violations = init.violations ?? [];
    this.method = init.method;
    this.attempts = init.attempts ?? 1;
  }

  /** UNAVAILABLE or DEADLINE_EXCEEDED: no answer came back; the service may be down or unreachable. */
  get unreachable(): boolean {
    return this.code === status.UNAVAILABLE || this.code === status.DEADLINE_EXCEEDED;
  }
}

/**
 * Decodes google.rpc.Status bytes. Unknown fields and detail types are skipped; a malformed
 * buffer yields undefined rather than an exception (the error's code and message still stand).
 */
export function decodeStatusDetails(bytes: Uint8Array): DecodedStatus | undefined {
  try {
    const out: DecodedStatus = { code: 0, message: '', detailTypes: [], violations: [] };
    const st = new BinaryReader(bytes);
    while (st.pos < st.len) {
      const [no, wt] = st.tag();
      if (no === 1) out.code = st.int32();
      else if (no === 2) out.message = st.string();
      else if (no === 3) {
        const { typeUrl, value } = readAny(st.bytes());
        out.detailTypes.push(typeUrl);
        if (typeUrl === BAD_REQUEST_TYPE) out.violations.push(...readBadRequest(value));
      } else st.skip(wt);
    }
    return out;
  } catch {
    return undefined;
  }
}

function readAny(bytes: Uint8Array): { typeUrl: string; value: Uint8Array } {
  const r = new BinaryReader(bytes);
  let typeUrl = '';
  let value: Uint8Array = new Uint8Array();
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1) typeUrl = r.string();
    else if (no === 2) value = r.bytes();
    else r.skip(wt);
  }
  return { typeUrl, value };
}

function readBadRequest(bytes: Uint8Array): FieldViolation[] {
  const r = new BinaryReader(bytes);
  const out: FieldViolation[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no !== 1) {
      r.skip(wt);
      continue;
    }
    const fv = new BinaryReader(r.bytes());
    const v: FieldViolation = { field: '', description: '' };
    while (fv.pos < fv.len) {
      const [fno, fwt] = fv.tag();
      if (fno === 1) v.field = fv.string();
      else if (fno === 2) v.description = fv.string();
      else fv.skip(fwt);
    }
    out.push(v);
  }
  return out;
}

/** Turns a grpc-js error (or anything thrown) into a HooklineError. */
export function toHooklineError(err: unknown, method: string, attempts = 1): HooklineError {
  if (err instanceof HooklineError) return err;
  const e = err as Partial<ServiceError> | undefined;
  const code = typeof e?.code === 'number' ? e.code : status.UNKNOWN;
  let details = typeof e?.details === 'string' ? e.details : err instanceof Error ? err.message : String(err);
  let violations: FieldViolation[] = [];
  const bin = e?.metadata instanceof Metadata ? e.metadata.get(STATUS_DETAILS_KEY)[0] : undefined;
  if (bin instanceof Uint8Array) {
    const decoded = decodeStatusDetails(bin);
    if (decoded) {
      violations = decoded.violations;
      if (!details && decoded.message) details = decoded.message;
    }
  }
  return new HooklineError({ code, details, violations, method, attempts, cause: err });
}

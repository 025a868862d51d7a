// How failures become HTTP answers, in one place. gRPC errors from the registry and dispatcher
// keep their code and their field violations (so the browser puts each message on its field);
// anything unexpected is answered 500 with a reference id only, its cause logged here, never sent.
import { randomBytes } from 'node:crypto';
import { HooklineError, status, type FieldViolation } from '@hookline/client';
import type { Logger } from '@hookline/service-kit';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: readonly FieldViolation[] = [],
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (field: string, description: string) => new HttpError(400, 'invalid_argument', `${field}: ${description}`, [{ field, description }]);
export const unauthenticated = (message = 'no portal session: open a new portal link') => new HttpError(401, 'unauthenticated', message);
export const forbidden = (code: string, message: string) => new HttpError(403, code, message);
export const notFound = (message = 'not found') => new HttpError(404, 'not_found', message);

const HTTP_OF: Partial<Record<status, [number, string]>> = {
  [status.INVALID_ARGUMENT]: [400, 'invalid_argument'],
  [status.OUT_OF_RANGE]: [400, 'invalid_argument'],
  [status.NOT_FOUND]: [404, 'not_found'],
  [status.ALREADY_EXISTS]: [409, 'already_exists'],
  [status.FAILED_PRECONDITION]: [409, 'failed_precondition'],
  [status.ABORTED]: [409, 'aborted'],
  [status.PERMISSION_DENIED]: [403, 'permission_denied'],
  [status.RESOURCE_EXHAUSTED]: [429, 'resource_exhausted'],
  [status.UNAVAILABLE]: [503, 'unavailable'],
  [status.DEADLINE_EXCEEDED]: [504, 'deadline_exceeded'],
};

export interface ErrorBody {
  error: { code: string; message: string; fields: FieldViolation[]; ref?: string };
}

export function toHttpError(err: unknown, log: Logger): { status: number; body: ErrorBody } {
  if (err instanceof HttpError) return { status: err.status, body: { error: { code: err.code, message: err.message, fields: [...err.fields] } } };
  if (err instanceof HooklineError && HTTP_OF[err.code]) {
    const [httpStatus, code] = HTTP_OF[err.code]!;
    // The services' messages are written for callers (service-kit never lets internals through).
    const message = err.unreachable ? 'the webhook service did not answer; try again in a moment' : err.details;
    if (err.unreachable) log.warn({ method: err.method, code: err.codeName }, 'backend unavailable');
    return { status: httpStatus, body: { error: { code, message, fields: err.violations.map((v) => ({ field: v.field, description: v.description })) } } };
  }
  const ref = randomBytes(6).toString('hex');
  log.error({ ref, err }, 'request failed');
  return { status: 500, body: { error: { code: 'internal', message: `something went wrong (reference ${ref})`, fields: [], ref } } };
}

// event-ingest's error vocabulary. Every failure of an item ends as a ServiceError whose code
// decides what happens next: gRPC callers get the code; the Kafka path dead-letters "poison"
// (the message itself is wrong and will never succeed) and retries everything else.
import { status } from '@grpc/grpc-js';
import { isDependencyUnavailable, ServiceError, unavailable } from '@hookline/service-kit';

/** Wrong input: retrying the same bytes can never succeed. */
const POISON = new Set<status>([status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION]);

export type Disposition = 'poison' | 'retry' | 'internal';

/** What the Kafka path does with an item that failed with `err`. */
export function disposition(err: ServiceError): Disposition {
  if (POISON.has(err.code)) return 'poison';
  if (err.code === status.INTERNAL) return 'internal';
  return 'retry';
}

/**
 * Any thrown value as a ServiceError. Driver/broker faults become UNAVAILABLE (retryable);
 * anything else is INTERNAL with a generic message (the cause stays attached for the logs,
 * never in the text a caller sees).
 */
export function asServiceError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  if (isDependencyUnavailable(err)) return unavailable('a backing service (database, broker or catalog) is unavailable; retry with backoff', err);
  return new ServiceError(status.INTERNAL, 'internal error while accepting the event; it may be retried', [], { cause: err });
}

// endpoint-registry's own error constructors, on top of service-kit's (which map every
// ServiceError to its gRPC status in one place).
import { status } from '@grpc/grpc-js';
import { ServiceError } from '@hookline/service-kit';

/** ABORTED: a read-modify-write kept losing to concurrent writers; the caller may retry at once. */
export const aborted = (message: string): ServiceError => new ServiceError(status.ABORTED, message);

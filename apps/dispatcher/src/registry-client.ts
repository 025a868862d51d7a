// The dispatcher's calls to endpoint-registry besides subscriber resolution: catalog examples
// for test sends, and disabling endpoints (410 Gone, failing too long). Every call has a deadline.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { endpointsV1 } from '@hookline/proto';
import { deadlineIn, unavailable } from '@hookline/service-kit';
import type { EndpointControl } from './delivery/pipeline';
import type { ExampleSource } from './grpc/delivery-service';

export class RegistryControl implements EndpointControl, ExampleSource {
  constructor(private readonly client: endpointsV1.EndpointRegistryServiceClient) {}

  disable(workspaceId: string, endpointId: string, reason: 'gone' | 'failing'): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.disableEndpoint({ workspaceId, endpointId, reason }, new Metadata(), { deadline: deadlineIn(3_000) }, (err: ServiceError | null) => {
        if (!err || err.code === status.NOT_FOUND) return resolve();
        reject(unavailable('endpoint-registry is unavailable', err));
      });
    });
  }

  example(eventType: string): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      this.client.getEventType({ name: eventType }, new Metadata(), { deadline: deadlineIn(3_000) }, (err: ServiceError | null, res?: endpointsV1.GetEventTypeResponse) => {
        if (!err) return resolve(res?.eventType?.exampleJson);
        if (err.code === status.NOT_FOUND || err.code === status.INVALID_ARGUMENT) return resolve(undefined);
        reject(unavailable('endpoint-registry is unavailable', err));
      });
    });
  }
}

// Generated contracts (ts-proto, see proto/buf.gen.yaml) and the descriptor set that server
// reflection serves. Nothing here is written by hand except this index.
import path from 'node:path';

export * as endpointsV1 from './gen/webhooks/endpoints/v1/endpoints';
export * as eventsV1 from './gen/webhooks/events/v1/events';
export * as deliveryV1 from './gen/webhooks/delivery/v1/delivery';
export * as portalV1 from './gen/webhooks/portal/v1/portal';
export { Duration } from './gen/google/protobuf/duration';

/** Binary FileDescriptorSet of every proto in proto/, written by `npm run proto:gen`. */
export const descriptorSetPath = path.join(__dirname, '..', 'descriptors.binpb');

/**
 * What reflection serves besides proto/: grpc.health.v1, grpc.reflection.v1/v1alpha and the
 * google.rpc error details (scripts/proto-runtime.sh, run by `npm run proto:gen`).
 */
export const runtimeDescriptorSetPath = path.join(__dirname, '..', 'runtime-descriptors.binpb');

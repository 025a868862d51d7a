// Each RPC's idempotency level, read from the contracts themselves (the descriptor set that
// `npm run proto:gen` writes next to libs/proto), so a method marked NO_SIDE_EFFECTS or
// IDEMPOTENT in a .proto file is retried on DEADLINE_EXCEEDED without a second list to keep.
import { readFileSync } from 'node:fs';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import { descriptorSetPath } from '@hookline/proto';

export type Safety = 'NO_SIDE_EFFECTS' | 'IDEMPOTENT' | 'UNKNOWN';

/** Full method path (`/pkg.Service/Method`) → level, from a binary FileDescriptorSet. */
export function safetyFromDescriptorSet(bytes: Uint8Array): Map<string, Safety> {
  const set = fromBinary(FileDescriptorSetSchema, bytes);
  const out = new Map<string, Safety>();
  for (const file of set.file) {
    for (const service of file.service) {
      for (const method of service.method) {
        const level = method.options?.idempotencyLevel ?? MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
        const safety: Safety =
          level === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ? 'NO_SIDE_EFFECTS' : level === MethodOptions_IdempotencyLevel.IDEMPOTENT ? 'IDEMPOTENT' : 'UNKNOWN';
        out.set(`/${file.package ? file.package + '.' : ''}${service.name}/${method.name}`, safety);
      }
    }
  }
  return out;
}

let contractSafety: Map<string, Safety> | undefined;

/** The level of one method of Hookline's contracts; UNKNOWN (never retried on deadline) if absent. */
export function methodSafety(method: string): Safety {
  contractSafety ??= safetyFromDescriptorSet(readFileSync(descriptorSetPath));
  return contractSafety.get(method) ?? 'UNKNOWN';
}

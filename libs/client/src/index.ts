// Typed clients for Hookline's internal gRPC services. See docs/cli.md for the CLI built on them.
export * from './client';
export * from './errors';
export * from './retry';
export { methodSafety, safetyFromDescriptorSet, type Safety } from './safety';

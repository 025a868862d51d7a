export * from './errors';
export * from './lifecycle';
export * from './logger';
export * from './config';
export * from './grpc-server';
export * from './ids';
export * from './run';
export * from './readiness';

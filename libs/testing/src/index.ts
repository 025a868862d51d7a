export * from './infra';
export * from './tls';
export * from './receiver';
export * from './processes';
export * from './rpc';
export * from './grpcurl';
export * from './cleanup';

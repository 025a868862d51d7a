export * from './settings';
export * from './init';
export * from './propagation';
export * from './spans';

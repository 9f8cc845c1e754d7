export * from './ports.ts';
export * from './version-vector.ts';
export * from './federation-errors.ts';
export * from './federation-messages.ts';
export * from './memory-federation-state-store.ts';
export * from './federation-engine.ts';

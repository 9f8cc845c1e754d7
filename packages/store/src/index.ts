export * from './event-store.ts';
export * from './blob-store.ts';
export * from './projection.ts';
export type * from './schema.ts';
export * from './projections/index.ts';

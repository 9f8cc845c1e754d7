export * from './projection-tables.ts';
export * from './rebuildable-projection.ts';
export * from './artifact-tree-projection.ts';
export * from './artifact-tree-queries.ts';
export * from './repository-config-projection.ts';
export * from './repository-queries.ts';
export * from './rebuild-projections.ts';
export { projectionsMigration } from '../migrations/002-projections.ts';
export * from './bulk-copy.ts';

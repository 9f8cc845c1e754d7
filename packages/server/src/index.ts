export { buildApp, ARTIFACTORY_PREFIX, STRATA_VERSION } from './app.ts';
export type * from './ports.ts';
export { DEFAULT_LIMITS } from './ports.ts';
export { startServer, type ServerSettings, type RunningServer } from './server.ts';
export { ProjectionReaders } from './projection-readers.ts';
export { BatchingDownloadCounter, MemoryDownloadStatsSink } from './download-counter.ts';

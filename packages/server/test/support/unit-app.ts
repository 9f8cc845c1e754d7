import { HybridLogicalClock } from '@strata/core';
import hyperid from 'hyperid';
import { MemoryEventAudit } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { BatchingDownloadCounter, MemoryDownloadStatsSink } from '../../src/download-counter.ts';
import type { AuthRegistration, ServerLimits } from '../../src/ports.ts';
import { FakeEventStore, FakeProjections } from './fake-projections.ts';
import { MemoryBlobStore } from './memory-blob-store.ts';
import { registerPermissiveAuth } from './permissive-auth.ts';

export interface UnitApp {
  readonly app: FastifyInstance;
  readonly store: FakeEventStore;
  readonly projections: FakeProjections;
  readonly blobs: MemoryBlobStore;
}

/**
 * The app on in-memory test doubles, everyone an admin (access control is tested elsewhere)
 * unless another `registerAuth` is given.
 */
export async function buildUnitApp(
  limits: Partial<ServerLimits> = {},
  logger?: Record<string, unknown>,
  registerAuth: AuthRegistration = registerPermissiveAuth,
): Promise<UnitApp> {
  const projections = new FakeProjections();
  const store = new FakeEventStore(projections);
  const blobs = new MemoryBlobStore();
  const clock = { now: () => Date.now() };
  const app = await buildApp({
    eventStore: store,
    blobStore: blobs,
    repositories: projections,
    artifacts: projections,
    downloads: new BatchingDownloadCounter(new MemoryDownloadStatsSink(), { flushIntervalMs: 0 }),
    clock,
    hlc: new HybridLogicalClock({ clock }),
    siteId: 'site-test',
    newId: hyperid({ urlSafe: true }),
    registerAuth,
    audit: new MemoryEventAudit(store),
    limits: { metadataCacheTtlMs: 0, ...limits },
    ...(logger === undefined ? {} : { logger }),
  });
  return { app, store, projections, blobs };
}
